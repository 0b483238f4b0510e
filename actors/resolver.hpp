#pragma once

/// `resolver`: name resolution with a deadline, the C++ answer to asyncio's
/// `loop.getaddrinfo` and `tokio::net::lookup_host`. Messages:
/// - `(resolve_atom, host, port, deadline)` → `std::vector<resolved_address>`
///   (every address `getaddrinfo` gives for a TCP connection to `host`,
///   in its order, duplicates removed); `deadline` is relative, a
///   `caf::timespan` (`resolve_deadline(d)` converts any duration,
///   saturating: `hours::max()` means none);
/// - `(resolver_stats_atom)` → `resolver_stats` (threads, stuck lookups,
///   threads abandoned, answers by kind).
/// Thread-safety: an actor; send it messages from anywhere. Replies to
/// concurrent requests may arrive in any order.
/// Shutdown: pending requests are answered with `shut_down`, idle threads
/// end; no thread is ever joined past the shutdown's deadline: one still
/// inside `getaddrinfo` then (abandoned at a lookup's deadline or not) is
/// counted in the report's `threads_abandoned`, and ends by itself later. The actor lives
/// until the runtime's shutdown or until it is sent an exit message, not
/// only while its spawner keeps a handle.
/// Errors: `io_error` naming `getaddrinfo`, the host and `gai_strerror`'s
/// text ("getaddrinfo 'nope.invalid': Name or service not known");
/// `timeout` at the deadline (saying whether the lookup was stuck in
/// `getaddrinfo` or still waiting for a free thread); `shut_down` once the
/// runtime's shutdown has begun; `invalid_argument` for an empty host or a
/// negative deadline.
///
///     auto dns = weave::actors::spawn_resolver(rt);
///     self->request(dns, caf::infinite, resolve_atom::value, "localhost",
///                   uint16_t{80}, weave::actors::resolve_deadline(2s))
///       .then([](std::vector<resolved_address>& xs) { ... },
///             [](caf::error& err) { /* timeout, io_error, ... */ });
///
/// Threads: the actor is event-based, on CAF's scheduler, and never blocks:
/// its handlers queue lookups (starting a lookup thread when none is free)
/// and answer requests from the results the threads send it. So a handle
/// held past the shutdown holds no thread. `getaddrinfo` blocks and cannot
/// be interrupted, so it runs on
/// a few threads of the resolver's own (`weave-resolve`; at most
/// `resolver_options::threads` serving at a time), never on a scheduler
/// thread and never on a pool of the user's: a hung name server cannot
/// take the user's workers. When a lookup's deadline passes while its
/// thread is still inside `getaddrinfo`, the request is answered with
/// `timeout` at once and that thread is abandoned: it no longer counts as
/// one of the serving threads, a replacement may start, and the stuck
/// thread ends by itself whenever `getaddrinfo` returns (its late answer is
/// dropped). The resolver's threads, serving and stuck together, are at
/// most `threads + max_stuck` (`resolver_options`): at that cap no
/// replacement starts, so with every serving thread stuck too, up to
/// `threads + max_stuck` lookups are stuck at once; new requests then wait
/// in the queue, each still answered with `timeout` at its own deadline
/// (the error says how many lookups are stuck).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "caf/atom.hpp"
#include "caf/meta/type_name.hpp"
#include "caf/replies_to.hpp"
#include "caf/timespan.hpp"
#include "caf/typed_actor.hpp"

#include "runtime/internal/deadline.hpp"
#include "runtime/runtime.hpp"

struct addrinfo;

namespace weave::actors {

using resolve_atom = caf::atom_constant<caf::atom("resolve")>;
using resolver_stats_atom = caf::atom_constant<caf::atom("resstats")>;

/// One address of a resolved host.
struct resolved_address {
  /// `AF_INET` or `AF_INET6`.
  int family = 0;
  /// The numeric address ("127.0.0.1", "::1").
  std::string address;
  /// The port asked for.
  uint16_t port = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, resolved_address& x) {
  return f(caf::meta::type_name("resolved_address"), x.family, x.address,
           x.port);
}

inline bool operator==(const resolved_address& x, const resolved_address& y) {
  return x.family == y.family && x.address == y.address && x.port == y.port;
}

/// A snapshot of a resolver's counters.
struct resolver_stats {
  /// Threads serving lookups now (idle or busy), not counting stuck ones.
  uint64_t threads = 0;
  /// Threads still inside a `getaddrinfo` whose deadline passed.
  uint64_t stuck = 0;
  /// Threads abandoned at a lookup's deadline, ever.
  uint64_t abandoned = 0;
  /// Requests waiting for a free thread.
  uint64_t queued = 0;
  /// Requests answered with addresses, with an error from `getaddrinfo`,
  /// with `timeout`.
  uint64_t resolved = 0;
  uint64_t failed = 0;
  uint64_t timed_out = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, resolver_stats& x) {
  return f(caf::meta::type_name("resolver_stats"), x.threads, x.stuck,
           x.abandoned, x.queued, x.resolved, x.failed, x.timed_out);
}

using resolver_actor = caf::typed_actor<
  caf::replies_to<resolve_atom, std::string, uint16_t,
                  caf::timespan>::with<std::vector<resolved_address>>,
  caf::replies_to<resolver_stats_atom>::with<resolver_stats>>;

/// The lookup a resolver calls, with `getaddrinfo`'s signature and contract.
using lookup_function = std::function<int(
  const char* host, const char* service, const struct addrinfo* hints,
  struct addrinfo** result)>;

/// How a resolver runs its lookups.
struct resolver_options {
  /// Threads serving lookups at most (started on demand; at least 1).
  size_t threads = 4;
  /// Abandoned (stuck) threads beyond `threads`: the resolver runs at
  /// most `threads + max_stuck` threads in all; at that cap no replacement
  /// starts and requests queue until their deadline.
  size_t max_stuck = 16;
  /// The lookup (default: `::getaddrinfo`). Replaceable for tests and for
  /// custom name services; it runs on the resolver's threads and its
  /// result is released with `freeaddrinfo` unless `free_result` is set.
  lookup_function lookup;
  /// Releases what `lookup` returned (default: `::freeaddrinfo`).
  std::function<void(struct addrinfo*)> free_result;
};

/// Spawns a resolver; throws `invalid_argument` for `threads == 0` and
/// `shut_down` once the runtime's shutdown has begun.
resolver_actor spawn_resolver(runtime& rt, resolver_options opts = {});

/// `d` as the deadline of a `resolve` message, saturating: a duration too
/// long for `caf::timespan` (`hours::max()`) becomes `timespan::max()`,
/// which means no deadline. A negative `d` stays negative (the resolver
/// answers it with `invalid_argument`).
template <class Rep, class Period>
caf::timespan resolve_deadline(std::chrono::duration<Rep, Period> d) noexcept {
  return caf::timespan{internal::saturating_duration(d).count()};
}

} // namespace weave::actors
