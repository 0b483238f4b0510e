#pragma once

/// `timer`: cancellable one-shot and periodic timers that send a message to
/// an actor, the C++ answer to asyncio's `loop.call_later` handles and
/// Tokio's `sleep` / `interval` (CAF's `delayed_send` cannot be cancelled).
///
///     auto t = weave::actors::send_after(rt, dest, 2s,
///                                        caf::make_message(ping_atom::value));
///     if (t.cancel()) { /* it will never be delivered */ }
///     auto beat = weave::actors::send_every(rt, dest, 100ms,
///                                           caf::make_message(tick_atom::value));
///
/// Operations:
/// - `send_after(rt, dest, delay, msg)`: sends `msg` to `dest` once, after
///   `delay`.
/// - `send_every(rt, dest, period, msg)`: sends `msg` to `dest` as a
///   request every `period`, the first at `period` from now. Tick `k` is
///   due at `start + k * period`. The next tick is sent only once `dest`
///   has answered the previous one (any answer: a handler returning
///   `void` answers with an empty message; an error answer counts too), so
///   a slow receiver never finds more than one tick of a timer in its
///   mailbox. Catch-up policy, when the receiver falls behind (answers
///   after the next tick was due): the missed ticks are skipped and the
///   phase is kept — the next tick is the first one due strictly after the
///   answer, at `start + k * period` (Tokio's `MissedTickBehavior::Skip`);
///   skipped ticks are counted in `stats().skipped`, never sent in a burst.
/// - `cancel()`: stops the timer; true if this call prevented a delivery.
///   For a one-shot timer, exactly one of "delivered" and "cancel() returned
///   true" happens, even when the cancel races with the firing. For a
///   periodic timer, true if it was still running: no tick is sent after
///   `cancel()` returns (one sent before may still be in `dest`'s mailbox).
///   Idempotent; false for an empty handle.
/// - `stats()`: state, ticks sent and skipped.
///
/// A timer does not keep `dest` alive. A periodic timer monitors `dest`
/// and stops when it ends; a one-shot timer whose `dest` is gone at its
/// time (no handle to it left) sends nothing; both then report `stopped`.
/// (A one-shot message to an actor that ended but is still referenced is
/// sent and dropped by CAF, as any message to it.) Dropping every handle
/// does not cancel a timer (as with `delayed_send`).
///
/// Durations saturate: a delay or period too long for any clock
/// (`hours::max()`) never fires. Errors (`weave::exception`): a negative
/// delay, a negative or zero period are `invalid_argument`; an invalid
/// `dest` is `invalid_argument`; after the runtime's shutdown has begun,
/// `shut_down`.
///
/// Timing: timers fire on the runtime's timer thread (`weave-timer`, the
/// one that answers timed submits at their deadlines), in deadline order;
/// a one-shot message is sent from that thread, a periodic tick from a
/// small hidden actor per periodic timer (the one that waits for `dest`'s
/// answer). Never on a scheduler thread that `dest` would wait for.
///
/// Thread-safety: a handle may be copied and used from any thread; copies
/// share the timer. Its lock is never held while user code runs (the
/// message's destructor included).
///
/// Shutdown: when the runtime's shutdown begins (its first phase), every
/// timer stops without firing again and reports `shut_down`.

#include <chrono>
#include <cstdint>
#include <memory>

#include "caf/actor.hpp"
#include "caf/actor_cast.hpp"
#include "caf/message.hpp"

#include "runtime/error.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/runtime.hpp"

namespace weave::actors {

namespace internal_timer {
class timer_state;
} // namespace internal_timer

/// What a timer reports.
struct timer_stats {
  enum class state_type {
    /// Waiting for its (next) time.
    armed,
    /// A one-shot timer that delivered its message.
    fired,
    /// Stopped by `cancel()`.
    cancelled,
    /// Its target ended.
    stopped,
    /// The runtime shut down.
    shut_down,
  };
  state_type state = state_type::armed;
  /// Messages sent.
  uint64_t fired = 0;
  /// Periodic ticks skipped because the receiver answered late.
  uint64_t skipped = 0;
  /// The number of the last tick sent (tick `k` was due at
  /// `start + k * period`); `fired + skipped == last_tick`.
  uint64_t last_tick = 0;
};

class timer {
public:
  /// An empty handle: `cancel()` is false, `stats()` reports `stopped`.
  timer() = default;

  /// Stops the timer; see the header comment.
  bool cancel();

  /// A snapshot of the timer's state and counters.
  timer_stats stats() const;

  /// True if the handle refers to a timer.
  explicit operator bool() const noexcept {
    return state_ != nullptr;
  }

private:
  friend timer start_timer(runtime& rt, caf::actor dest,
                           internal::steady_clock::duration d,
                           caf::message msg, bool periodic);

  explicit timer(std::shared_ptr<internal_timer::timer_state> st)
    : state_(std::move(st)) {
    // nop
  }

  std::shared_ptr<internal_timer::timer_state> state_;
};

/// Starts a timer with a checked, saturated duration (see below).
timer start_timer(runtime& rt, caf::actor dest,
                  internal::steady_clock::duration d, caf::message msg,
                  bool periodic);

/// Sends `msg` to `dest` once, after `delay`; see the header comment.
template <class Handle, class Rep, class Period>
timer send_after(runtime& rt, const Handle& dest,
                 std::chrono::duration<Rep, Period> delay, caf::message msg) {
  if (internal::negative_or_nan(delay))
    raise(make_error(errc::invalid_argument,
                     "send_after: negative or NaN delay"));
  return start_timer(rt, caf::actor_cast<caf::actor>(dest),
                     internal::saturating_duration(delay), std::move(msg),
                     false);
}

/// Sends `msg` to `dest` as a request every `period`; see the header
/// comment.
template <class Handle, class Rep, class Period>
timer send_every(runtime& rt, const Handle& dest,
                 std::chrono::duration<Rep, Period> period, caf::message msg) {
  if (internal::negative_or_nan(period)
      || internal::saturating_duration(period)
           <= internal::steady_clock::duration::zero())
    raise(make_error(errc::invalid_argument,
                     "send_every: the period must be positive"));
  return start_timer(rt, caf::actor_cast<caf::actor>(dest),
                     internal::saturating_duration(period), std::move(msg),
                     true);
}

} // namespace weave::actors
