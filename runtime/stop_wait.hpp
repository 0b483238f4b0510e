#pragma once

/// Waits that a `stop_token` ends early: `sleep_for`, and waits on a
/// condition variable.
///
/// A job that honours its stop token must not sleep or wait past the stop.
/// These waits return promptly once the token is stopped (the stop request
/// wakes them directly; no polling), and say whether it was the stop that
/// ended them:
/// - `sleep_for(tok, d)`: true if it slept the full time, false if the token
///   was stopped (before or during the sleep).
/// - `wait(tok, cv, lock, pred)`: waits until `pred()` holds or the token is
///   stopped and returns `pred()` (like C++20's
///   `condition_variable_any::wait(lock, token, pred)`): false means
///   stopped. `wait_for(tok, cv, lock, timeout, pred)` also ends at the
///   timeout (false if `pred()` still does not hold). `cv` is a
///   `std::condition_variable` (with `std::unique_lock<std::mutex>`) or a
///   `std::condition_variable_any` (with any `std::unique_lock<M>`); `lock`
///   must be held on entry and is held on return. Whoever changes what
///   `pred` looks at notifies `cv` as usual.
///
/// Durations saturate (`hours::max()` waits without a limit); a negative or
/// NaN duration throws `invalid_argument` naming the call. Like every
/// blocking call of weave, these throw `would_deadlock` on a thread that
/// must never block (a scheduler thread, an event loop's own thread).
///
/// How a stop wakes a waiter: a stop callback takes the waiter's mutex and
/// then notifies `cv`, so a stop between the waiter's last look at the
/// token and its going to sleep is never lost. That callback runs on the
/// thread that requests the stop, so a thread that calls `request_stop`
/// while holding the waiter's mutex deadlocks, as any thread that notified
/// under a lock it never releases would; request the stop without holding
/// it. A waiter leaving its wait while that callback is still running on
/// the stopping thread releases `lock` for a moment (so the callback can
/// finish) and evaluates `pred` once more after taking it back.
///
/// Thread-safety: each call acts for the calling thread; any number of
/// threads may wait on one token, and on one condition variable with their
/// own tokens.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/error.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/stop_hook.hpp"
#include "runtime/stop_token.hpp"

namespace weave {

namespace internal {

/// Sleeps until `tp` (`time_point::max()`: no limit) or the stop.
bool sleep_until(const stop_token& tok, steady_clock::time_point tp);

/// The stop callback of a waiter on `cv`: takes the waiter's mutex, then
/// notifies. On the waiter's own thread (registering after the stop, or a
/// predicate that requests the stop) it only sets `*fired_here`: that
/// thread holds the mutex and is not waiting, and it looks at the flag
/// before it waits.
template <class Mutex, class CondVar>
class cv_waker {
public:
  cv_waker(Mutex* mtx, CondVar* cv, bool* fired_here) noexcept
    : mtx_(mtx),
      cv_(cv),
      fired_here_(fired_here),
      waiter_(std::this_thread::get_id()) {
  }

  void operator()() noexcept {
    if (std::this_thread::get_id() == waiter_) {
      *fired_here_ = true;
      return;
    }
    { std::lock_guard<Mutex> guard{*mtx_}; }
    cv_->notify_all();
  }

private:
  Mutex* mtx_;
  CondVar* cv_;
  bool* fired_here_;
  std::thread::id waiter_;
};

/// Waits on `cv` until `pred()`, the stop of `tok`, or `tp`; returns
/// `pred()`. See the header comment.
template <class CondVar, class Mutex, class Pred>
bool stop_wait_until(const stop_token& tok, CondVar& cv,
                     std::unique_lock<Mutex>& lock,
                     steady_clock::time_point tp, Pred& pred,
                     const char* what) {
  check_may_block(what);
  if (!lock.owns_lock())
    raise(make_error(errc::invalid_argument,
                     std::string{what} + ": the lock must be held"));
  if (pred())
    return true;
  if (tok.stop_requested())
    return false;
  auto fired_here = false;
  stop_hook<cv_waker<Mutex, CondVar>> hook{
    cv_waker<Mutex, CondVar>{lock.mutex(), &cv, &fired_here}};
  hook.attach(state_of(tok));
  auto ok = false;
  // The token first, then `pred`, then the wait: a stop requested by another
  // thread meanwhile takes the mutex before it notifies, so it finds this
  // thread waiting; one requested by `pred` itself sets `fired_here`.
  for (;;) {
    if (tok.stop_requested()) {
      ok = pred();
      break;
    }
    if (pred()) {
      ok = true;
      break;
    }
    if (fired_here)
      break;
    if (tp == steady_clock::time_point::max()) {
      cv.wait(lock);
    } else if (cv.wait_until(lock, tp) == std::cv_status::timeout) {
      ok = pred();
      break;
    }
  }
  // The waker may be running on the stopping thread, waiting for our
  // mutex: let it finish before it goes away.
  if (!hook.try_detach()) {
    lock.unlock();
    hook.detach();
    lock.lock();
    ok = pred();
  }
  return ok;
}

/// The deadline `d` from now, refusing a negative or NaN `d`.
template <class Rep, class Period>
steady_clock::time_point
checked_deadline(std::chrono::duration<Rep, Period> d, const char* what) {
  if (negative_or_nan(d))
    raise(make_error(errc::invalid_argument,
                     std::string{what} + ": negative or NaN duration"));
  return deadline_after(d);
}

} // namespace internal

/// Sleeps `d` unless `tok` is stopped first: true if it slept the full
/// time, false if stopped (also when it was stopped before the call).
template <class Rep, class Period>
bool sleep_for(const stop_token& tok, std::chrono::duration<Rep, Period> d) {
  internal::check_may_block("weave::sleep_for");
  return internal::sleep_until(
    tok, internal::checked_deadline(d, "weave::sleep_for"));
}

/// Waits until `pred()` holds or `tok` is stopped; returns `pred()`.
template <class Pred>
bool wait(const stop_token& tok, std::condition_variable& cv,
          std::unique_lock<std::mutex>& lock, Pred pred) {
  return internal::stop_wait_until(tok, cv, lock,
                                   internal::steady_clock::time_point::max(),
                                   pred, "weave::wait");
}

template <class Mutex, class Pred>
bool wait(const stop_token& tok, std::condition_variable_any& cv,
          std::unique_lock<Mutex>& lock, Pred pred) {
  return internal::stop_wait_until(tok, cv, lock,
                                   internal::steady_clock::time_point::max(),
                                   pred, "weave::wait");
}

/// Waits until `pred()` holds, `tok` is stopped or `timeout` passed;
/// returns `pred()`.
template <class Rep, class Period, class Pred>
bool wait_for(const stop_token& tok, std::condition_variable& cv,
              std::unique_lock<std::mutex>& lock,
              std::chrono::duration<Rep, Period> timeout, Pred pred) {
  auto tp = internal::checked_deadline(timeout, "weave::wait_for");
  return internal::stop_wait_until(tok, cv, lock, tp, pred, "weave::wait_for");
}

template <class Mutex, class Rep, class Period, class Pred>
bool wait_for(const stop_token& tok, std::condition_variable_any& cv,
              std::unique_lock<Mutex>& lock,
              std::chrono::duration<Rep, Period> timeout, Pred pred) {
  auto tp = internal::checked_deadline(timeout, "weave::wait_for");
  return internal::stop_wait_until(tok, cv, lock, tp, pred, "weave::wait_for");
}

} // namespace weave
