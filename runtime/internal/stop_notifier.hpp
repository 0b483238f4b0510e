#pragma once

// Internal: how weave's own blocking waits (futures, channels) let a stop
// token wake them.
//
// A waiter that is about to wait registers a `notify_on_stop` with its
// token (`arm`), without holding its lock: if the token is already stopped,
// the callback runs at once, on the waiter's thread, and takes that lock.
// When the token is stopped, the callback takes the waiter's lock and wakes
// every thread waiting on the condition variables; each looks at its own
// token (and the rest of its condition) again, under the lock. Taking the
// lock first means a stop between a waiter's last look at its token and its
// wait is never lost. The waiter lets its `stop_notifier` go after it
// released the lock (declare it before the lock guard), so deregistering,
// which waits for a callback that is running, never waits for a callback
// that waits for this thread's lock.
//
// The callback is weave's own code: it runs no user code under the lock.

#include <condition_variable>
#include <mutex>
#include <optional>

#include "runtime/internal/stop_hook.hpp"
#include "runtime/stop_token.hpp"

namespace weave::internal {

/// Takes `mtx`, then wakes every thread waiting on `a` and on `b` (if set).
struct notify_on_stop {
  std::mutex* mtx;
  std::condition_variable* a;
  std::condition_variable* b;

  void operator()() noexcept {
    std::unique_lock<std::mutex> guard{*mtx};
    a->notify_all();
    if (b != nullptr)
      b->notify_all();
  }
};

/// A waiter's registration; empty until armed.
using stop_notifier = std::optional<stop_hook<notify_on_stop>>;

/// Registers `what` with `tok`. Call without holding `*what.mtx`.
inline void arm(stop_notifier& hook, const stop_token& tok,
                notify_on_stop what) {
  hook.emplace(what);
  hook->attach(state_of(tok));
}

} // namespace weave::internal
