#pragma once

// Internal: the batched messages between a process pool and its workers
// (see remote_protocol.hpp). Several jobs travel in one middleman message
// so that each message's cost (a socket write, a wake-up of the middleman's
// I/O thread and of the receiving actor) is shared by the jobs in it:
//
//   client -> worker  (runs, bytes: [(id, name, args, granted, deadline)])
//                       jobs to hold; a granted one starts without a claim
//   worker -> client  (lates, slot, generation, bytes: [id])  jobs whose
//                       deadline passed before a thread began them: not run
//   worker -> client  (claims, slot, generation, bytes: [id])
//                       => bytes: one flag per id (1: start it, 0: drop it)
//   worker -> client  (dones, slot, generation, bytes: [(id, result)])
//   client -> worker  (revoke, id)             a claimed job's cancel/timeout
//   worker -> client  (revoked, id, slot, generation, dropped)
//
// Deadline: a pool's workers run on its host, so the monotonic clock
// (`steady_clock`) is the same on both ends and a job carries its deadline
// as that clock's ticks. The thread that would begin a job past it drops it
// instead, which keeps "a job no worker started by its deadline never
// runs" when the deadline's revoke (below) comes too late to find the job.
//
// Revoke: a claimed job may still wait in its worker for a thread. The
// worker's actor is the only one that hands jobs to its threads, so it
// decides a revoke alone, at once: a job it has not handed over yet
// (waiting, claim in flight, or granted) is dropped there and never runs
// (`dropped` true); one handed over or finished is not (`dropped` false).
//
// The lists are encoded with CAF's binary serializer into one byte vector,
// a type CAF serialises out of the box (no message type to register).

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "caf/atom.hpp"
#include "caf/binary_deserializer.hpp"
#include "caf/binary_serializer.hpp"

namespace weave::internal {

using runs_atom = caf::atom_constant<caf::atom("wv_runs")>;
using claims_atom = caf::atom_constant<caf::atom("wv_claims")>;
using dones_atom = caf::atom_constant<caf::atom("wv_dones")>;
using revoke_atom = caf::atom_constant<caf::atom("wv_revoke")>;
using revoked_atom = caf::atom_constant<caf::atom("wv_revoked")>;
using lates_atom = caf::atom_constant<caf::atom("wv_lates")>;

/// A `run_item`'s deadline when it has none.
constexpr int64_t no_deadline = INT64_MAX;

/// Jobs a worker claims and has not finished, at most, per thread: one
/// claim message covers several, and a claimed job that has not started
/// yet counts as "maybe executed" if its worker is lost.
constexpr size_t claim_window_per_thread = 16;

/// A job sent to a worker; `granted`: it may start without a claim (the
/// pool granted it as it sent it); `deadline`: `steady_clock` ticks since
/// its epoch after which it must not begin, or `no_deadline`.
struct run_item {
  uint64_t id = 0;
  std::string name;
  std::vector<char> args;
  bool granted = false;
  int64_t deadline = no_deadline;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_item& x) {
  return f(x.id, x.name, x.args, x.granted, x.deadline);
}

/// A job's encoded result.
struct done_item {
  uint64_t id = 0;
  std::vector<char> result;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, done_item& x) {
  return f(x.id, x.result);
}

/// `xs` as bytes.
template <class T>
std::vector<char> encode_batch(T& xs) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  if (sink(xs))
    buf.clear(); // cannot happen for these types
  return buf;
}

/// Reads `xs` from `bytes`; false if they are malformed (bytes left over
/// too: the other end encodes another layout).
template <class T>
bool decode_batch(const std::vector<char>& bytes, T& xs) {
  caf::binary_deserializer source{nullptr, bytes};
  return !source(xs) && source.remaining() == 0;
}

/// The line a process pool's worker adds to its job table when it joins:
/// the layout of these messages. A pool refuses a worker program that
/// does not send exactly this line (built with another weave version),
/// with an error naming it, instead of misreading its messages.
constexpr const char* protocol_line = "weave-process-pool\tprotocol-3\t0";

/// The version in `protocol_line`, for messages.
constexpr const char* protocol_version = "protocol-3";

} // namespace weave::internal
