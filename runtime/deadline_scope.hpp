#pragma once

/// `deadline_scope`: a deadline for everything started under it, the answer
/// to `asyncio.timeout()` and Trio's cancel scopes for weave's jobs.
///
///     {
///       weave::deadline_scope scope{200ms};
///       auto a = pool.submit(fetch);          // deadline: now + 200 ms
///       auto b = pool.submit(parse, 1s);      // the tighter: the scope's
///       weave::current_deadline();            // now + 200 ms
///     }
///
/// While a scope lives, every job the thread submits to a pool
/// (`blocking_pool::submit`) or offloads (`offload`, inside an actor's
/// handler) gets the scope's deadline, or its own timeout if that is
/// tighter: a job still queued at the deadline never runs and is answered
/// `timeout`; one that runs and takes a `stop_token` is asked to stop (see
/// blocking_pool.hpp). A job runs under its own deadline: inside it,
/// `current_deadline()` returns it, and the jobs it submits inherit it — so
/// a deadline set by a caller bounds everything started under it, however
/// deep. Scopes nest; the tightest deadline wins: an inner scope never
/// extends an outer one.
///
/// `current_deadline()` is `steady_clock::time_point::max()` where no scope
/// or job deadline applies. A duration too large for the clock
/// (`hours::max()`) saturates to "no deadline"; a negative or NaN one is
/// refused with `weave::exception` (`invalid_argument`).
///
/// Thread-safety: a scope belongs to the thread that made it (it sets that
/// thread's deadline). Scopes may end in any order: a scope's end removes
/// only its own deadline. One destroyed on another thread changes nothing
/// there (and its deadline stays on its own thread). In an actor, a scope
/// lasts at most the handler that made it: the scheduler thread forgets
/// every scope when the actor's turn ends, so one kept alive in the actor's
/// state never reaches another actor's handler. Shutdown: nothing to stop;
/// a scope is a value on a stack.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <type_traits>

#include "runtime/error.hpp"
#include "runtime/internal/deadline.hpp"

namespace weave {

/// The deadline that applies to the calling thread: its tightest live
/// `deadline_scope`'s, or the running job's; `time_point::max()` if none.
std::chrono::steady_clock::time_point current_deadline() noexcept;

namespace internal {

/// Sets the calling thread's base deadline (a running job's, under its
/// scopes); returns the previous one.
std::chrono::steady_clock::time_point
exchange_current_deadline(std::chrono::steady_clock::time_point at) noexcept;

/// Forgets the calling thread's scopes and base deadline: a scheduler
/// thread calls it around each actor's turn, so a scope an actor keeps
/// alive past its handler never reaches another actor's handler.
void reset_thread_deadline() noexcept;

/// Registers a scope's deadline on the calling thread; returns its id.
uint64_t push_scope(std::chrono::steady_clock::time_point at);

/// Removes the scope `id` from the calling thread (nothing if it is not
/// there: destroyed on another thread, or after a reset).
void pop_scope(uint64_t id) noexcept;

} // namespace internal

class deadline_scope {
public:
  using time_point = std::chrono::steady_clock::time_point;

  /// A deadline `d` from now (or the enclosing one, if that is earlier).
  template <class Rep, class Period>
  explicit deadline_scope(std::chrono::duration<Rep, Period> d)
    : deadline_scope(checked_deadline(d)) {
    // nop
  }

  /// A deadline at `at` (or the enclosing one, if that is earlier).
  explicit deadline_scope(time_point at)
    : deadline_(std::min(at, current_deadline())),
      id_(internal::push_scope(at)) {
    // nop
  }

  ~deadline_scope();

  deadline_scope(const deadline_scope&) = delete;
  deadline_scope& operator=(const deadline_scope&) = delete;

  /// This scope's deadline (the tightest of it and the enclosing ones when
  /// it was made).
  time_point deadline() const noexcept {
    return deadline_;
  }

private:
  template <class Rep, class Period>
  static time_point checked_deadline(std::chrono::duration<Rep, Period> d) {
    bool bad;
    if constexpr (std::is_floating_point<Rep>::value)
      bad = !(d.count() >= Rep{0});
    else
      bad = d.count() < Rep{0};
    if (bad)
      raise(make_error(errc::invalid_argument,
                       "deadline_scope: negative duration (or not a number)"));
    return internal::deadline_after(d);
  }

  time_point deadline_{};
  uint64_t id_ = 0;
};

} // namespace weave
