#pragma once

// Internal: the messages between a pool (the client) and a worker, over
// CAF's middleman. Every element is a type CAF serialises out of the box
// (atoms, integers, strings, byte vectors, actors, errors), so neither side
// registers message types.
//
// The protocol does not depend on who connected to whom. A process_pool
// publishes its client actor on 127.0.0.1 and the worker process connects
// to it and announces itself with `join`; a pool of workers on other hosts
// would have each worker publish its worker actor, the client connect to
// it asynchronously (the middleman actor's `connect` request, with a
// deadline) and ask `hello`, whose answer carries the same fields as `join`.
// From there on both are the same:
//
//   worker -> client  (join, worker, slot, generation, pid, job table)
//   client -> worker  (hello, slot, generation)
//                       => (worker, pid, job table)
//   client -> worker  (run, id, name, args)             at most `capacity`
//   worker -> client  (claim, id, slot, generation)  => bool   before a start
//   worker -> client  (done, id, slot, generation, result bytes)
//   worker -> client  (failed, id, slot, generation, error)
//
// A process pool and its workers send the same messages in batches
// (process_pool_batch.hpp): `runs` for several `run`s, `claims` for
// several claims, `dones` for several results.
//
// `slot` and `generation` name the worker's place in the pool and its
// incarnation there: a message from an earlier incarnation (a worker lost,
// then replaced) is recognised and ignored. A claim answered `false` means
// the job was cancelled or timed out meanwhile: the worker drops it. The
// client monitors the worker actor: a DOWN (node down, connection timeout)
// loses the worker; the worker monitors the client and exits on its DOWN.

#include <cstdint>

#include "caf/atom.hpp"

namespace weave::internal {

using join_atom = caf::atom_constant<caf::atom("wv_join")>;
using hello_atom = caf::atom_constant<caf::atom("wv_hello")>;
using run_atom = caf::atom_constant<caf::atom("wv_run")>;
using claim_atom = caf::atom_constant<caf::atom("wv_claim")>;
using done_atom = caf::atom_constant<caf::atom("wv_done")>;
using failed_atom = caf::atom_constant<caf::atom("wv_failed")>;

/// The first argument of a worker process started by a pool; the rest:
/// host, port, slot, generation, threads.
constexpr const char* worker_flag = "--weave-process-worker";

/// Set in a worker's environment: a process pool refuses to start inside a
/// worker (a program without the worker hook would start workers forever).
constexpr const char* worker_env = "WEAVE_PROCESS_WORKER";

/// Set in a worker's environment by its pool: the pool's
/// `middleman.heartbeat-interval` in nanoseconds, which the worker adopts.
constexpr const char* worker_heartbeat_env = "WEAVE_PROCESS_WORKER_HEARTBEAT";

} // namespace weave::internal
