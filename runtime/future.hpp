#pragma once

/// `future<T>` and `promise<T>`: results for code that is not an actor.
///
/// The C++ answer to `concurrent.futures.Future`: what `loop::submit`,
/// `blocking_pool::submit` and `spawn_blocker` hand back to a plain thread.
///
/// Operations
/// - `get()` waits and returns the value, or throws `weave::exception`
///   carrying the error (`job_failed` with the exception's message,
///   `cancelled`, `shut_down`, ...). The value is moved out: a second `get()`
///   throws `already_retrieved`. `get_result()` returns it as a `result<T>`.
/// - `wait()`, `wait_for(timeout)`, `done()`. Any timeout is accepted:
///   `hours::max()` waits without a limit; a negative (or NaN) timeout is
///   `invalid_argument`.
/// - With a `stop_token`: `get(tok)`, `get_result(tok)`, `wait(tok)`,
///   `wait_for(tok, timeout)` also end when `tok` is stopped, promptly (the
///   stop wakes the waiter). `get(tok)` then throws `weave::exception`
///   carrying the token's cause (`cancelled`, `timeout`, `shut_down`, ...),
///   `get_result(tok)` returns that error, `wait(tok)` and `wait_for` return
///   false. The future is left as it was: its outcome, when it comes, can
///   still be taken. The token is looked at only when the call would wait:
///   a future that is already done hands out its outcome.
/// - `then(cb)`: `cb` takes the outcome as `result<T>` (by value, `&`,
///   `const&` or `&&`) and runs exactly once, when the future completes. It
///   runs on the thread that completes the future (a pool worker, the loop's
///   thread, ...), or at once on the calling thread if the future is already
///   complete. `then` returns a `future<R>` for `cb`'s result; if `cb` returns
///   a `future<U>`, the result is a `future<U>` that completes with it; if
///   `cb` throws, the result fails with the exception's error. `then`
///   consumes the value, like `get()`.
/// - `cancel()`: a job that has not started never runs, and its future
///   completes with `cancelled`. A running pool job or loop task that takes
///   a `stop_token` is asked to stop and completes with the stop's cause
///   when it returns (a pool job: or after the pool's grace period, see
///   blocking_pool.hpp; a loop task: when the future it returned completes):
///   `cancelled`, unless an earlier request (its deadline: `timeout`) came
///   first. The stop's callbacks run on the thread that calls `cancel()`.
///   Returns false once the job has ended, or while it runs without a token
///   (a plain promise's future simply completes with `cancelled`).
///
/// Blocking rules: no scheduler thread ever blocks on weave's behalf, so
/// `get`, `wait` and `wait_for` refuse to run on a thread that must never
/// block (a CAF scheduler or clock thread, an event loop's own thread) and
/// throw `would_deadlock` instead of hanging. weave knows these threads
/// because it names them when CAF starts them (a CAF thread hook) and when a
/// loop starts; see `this_thread_must_not_block()`. Inside an event-based
/// actor, use `then` or `offload` instead.
///
/// Waiting spins briefly (the runtime's `weave.spin`, 50 µs by default) before
/// parking on a condition variable, so a result that arrives quickly is seen
/// without a futex round trip.
///
/// Thread-safety: all members may be called from any thread. Completion
/// happens-before `get()`/`wait()` return and before a `then` callback runs.
/// `future` and `promise` are cheap handles to a shared state; copies refer
/// to the same result. No user code (continuations, the value's constructors)
/// runs while weave holds the state's lock. When every `promise` of a pending
/// state is gone, the future completes with `broken_promise`: nobody waits
/// forever.

#include <chrono>
#include <string>
#include <type_traits>
#include <utility>

#include "caf/expected.hpp"
#include "caf/make_counted.hpp"

#include "runtime/error.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/future_state.hpp"
#include "runtime/stop_token.hpp"

namespace weave {

/// The outcome of a job: a value or a `caf::error`.
template <class T>
using result = caf::expected<T>;

template <class T>
class promise;

namespace internal {

/// Calls `cb` with `r`: as an rvalue where `cb` accepts one (by value,
/// `const&`, `&&`), else as an lvalue (`result<T>&`).
template <class F, class R>
decltype(auto) call_with_result(F& cb, R& r) {
  if constexpr (std::is_invocable<F&, R&&>::value)
    return cb(std::move(r));
  else
    return cb(r);
}

/// The state behind `f` (null for an invalid future).
template <class T>
const future_state_ptr<T>& state_of(const future<T>& f) noexcept;

/// True for a negative or NaN duration (refused as a timeout).
template <class Rep, class Period>
bool negative_or_nan(std::chrono::duration<Rep, Period> d) noexcept {
  if constexpr (std::is_floating_point<Rep>::value)
    return !(d.count() >= Rep{0});
  else
    return d.count() < Rep{0};
}

template <class F, class R>
using result_handler_return_t = typename std::conditional_t<
  std::is_invocable<F&, R&&>::value, std::invoke_result<F&, R&&>,
  std::invoke_result<F&, R&>>::type;

} // namespace internal

template <class T>
class future {
public:
  using value_type = T;

  /// An invalid future (no shared state).
  future() = default;

  bool valid() const noexcept {
    return state_ != nullptr;
  }

  /// True once a value or an error is available.
  bool done() const noexcept {
    return state_ && state_->ready();
  }

  /// Waits for the outcome; returns the value or throws `weave::exception`.
  T get() {
    internal::check_may_block("future::get");
    checked_state().wait();
    auto res = state_->take();
    if (!res)
      raise(res.error());
    if constexpr (!std::is_void<T>::value)
      return std::move(*res);
  }

  /// Waits for the outcome and returns it without throwing.
  result<T> get_result() {
    internal::check_may_block("future::get_result");
    checked_state().wait();
    return state_->take();
  }

  void wait() {
    internal::check_may_block("future::wait");
    checked_state().wait();
  }

  /// Waits at most `timeout` (saturating: `hours::max()` has no limit); true
  /// if the future is done. Throws `invalid_argument` for a negative or NaN
  /// timeout.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) {
    return wait_for_impl(timeout, nullptr);
  }

  /// Waits for the outcome unless `tok` is stopped first; returns the
  /// value or throws `weave::exception` (the future's error, or the token's
  /// cause if it stopped the wait).
  T get(const stop_token& tok) {
    internal::check_may_block("future::get");
    auto res = take_unless_stopped(tok, "future::get");
    if (!res)
      raise(res.error());
    if constexpr (!std::is_void<T>::value)
      return std::move(*res);
  }

  /// Like `get(tok)`, returning the error instead of throwing it.
  result<T> get_result(const stop_token& tok) {
    internal::check_may_block("future::get_result");
    return take_unless_stopped(tok, "future::get_result");
  }

  /// Waits for the outcome unless `tok` is stopped first; true if done.
  bool wait(const stop_token& tok) {
    internal::check_may_block("future::wait");
    return checked_state().wait_until(
      internal::steady_clock::time_point::max(), tok);
  }

  /// Waits at most `timeout`, or until `tok` is stopped; true if done.
  template <class Rep, class Period>
  bool wait_for(const stop_token& tok,
                std::chrono::duration<Rep, Period> timeout) {
    return wait_for_impl(timeout, &tok);
  }

  /// Cancels the job if it has not started: it never runs and the future
  /// completes with `cancelled`. A running job that takes a `stop_token` is
  /// asked to stop (true). False if it completed, or runs without a token.
  bool cancel() {
    return checked_state().cancel(
      make_error(errc::cancelled, "cancelled before it started"));
  }

  /// Attaches a continuation; see the header comment.
  template <class F>
  auto then(F cb) {
    using r0 = internal::result_handler_return_t<F, result<T>>;
    using r = typename internal::unwrap_future<r0>::type;
    auto next = caf::make_counted<internal::future_state<r>>();
    auto self = checked_state_ptr();
    self->on_complete(internal::callback{
      [self, next, cb = std::move(cb)]() mutable {
        auto res = self->take();
        if constexpr (internal::is_future<r0>::value) {
          try {
            auto inner = internal::call_with_result(cb, res);
            auto inner_state = inner.checked_state_ptr();
            inner_state->on_complete(internal::callback{
              [inner_state, next] {
                internal::fulfil(*next, inner_state->take());
              }});
          } catch (...) {
            next->set_error(internal::current_exception_error());
          }
        } else {
          auto call = [&cb, &res] {
            return internal::call_with_result(cb, res);
          };
          internal::fulfil_with(*next, call);
        }
      }});
    return internal::make_future(std::move(next));
  }

private:
  /// `wait_for`, with or without a token (`tok` null: none).
  template <class Rep, class Period>
  bool wait_for_impl(std::chrono::duration<Rep, Period> timeout,
                     const stop_token* tok) {
    internal::check_may_block("future::wait_for");
    if (internal::negative_or_nan(timeout))
      raise(make_error(errc::invalid_argument,
                       "future::wait_for: negative or NaN timeout"));
    auto& st = checked_state();
    if (st.ready())
      return true;
    if (timeout == timeout.zero())
      return false;
    auto deadline = internal::deadline_after(timeout);
    return tok != nullptr ? st.wait_until(deadline, *tok)
                          : st.wait_until(deadline);
  }
  template <class>
  friend class future;

  template <class>
  friend class promise;

  template <class U>
  friend future<U> internal::make_future(internal::future_state_ptr<U>);

  template <class U>
  friend const internal::future_state_ptr<U>&
  internal::state_of(const future<U>& f) noexcept;

  explicit future(internal::future_state_ptr<T> st) : state_(std::move(st)) {
  }

  internal::future_state<T>& checked_state() const {
    if (!state_)
      raise(make_error(errc::invalid_argument, "the future has no state"));
    return *state_;
  }

  /// Waits until done or stopped; the outcome, or the stop's error.
  result<T> take_unless_stopped(const stop_token& tok, const char* what) {
    auto& st = checked_state();
    if (!st.wait_until(internal::steady_clock::time_point::max(), tok))
      return internal::stop_error(tok.cause(),
                                  (std::string{what} + ": stopped").c_str());
    return st.take();
  }

  const internal::future_state_ptr<T>& checked_state_ptr() const {
    checked_state();
    return state_;
  }

  internal::future_state_ptr<T> state_;
};

/// The writing side of a `future<T>`; copies share the state. The first
/// `set_value` or `set_error` wins; later ones return false.
template <class T>
class promise {
public:
  promise() : state_(caf::make_counted<internal::future_state<T>>()) {
    state_->add_promise();
  }

  promise(const promise& other) : state_(other.state_) {
    if (state_)
      state_->add_promise();
  }

  promise(promise&& other) noexcept = default;

  promise& operator=(promise other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }

  ~promise() {
    if (state_)
      state_->release_promise();
  }

  future<T> get_future() const {
    return future<T>{state_};
  }

  template <class... Us>
  bool set_value(Us&&... xs) {
    return state_->set_value(std::forward<Us>(xs)...);
  }

  bool set_error(caf::error err) {
    return state_->set_error(std::move(err));
  }

  /// Sets the value or the error held by `res`.
  bool set_result(result<T> res) {
    if (!res)
      return set_error(res.error());
    if constexpr (std::is_void<T>::value)
      return set_value();
    else
      return set_value(std::move(*res));
  }

private:
  internal::future_state_ptr<T> state_;
};

namespace internal {

template <class T>
future<T> make_future(future_state_ptr<T> st) {
  return future<T>{std::move(st)};
}

template <class T>
const future_state_ptr<T>& state_of(const future<T>& f) noexcept {
  return f.state_;
}

/// A future that has already failed with `err`.
template <class T>
future<T> failed_future(caf::error err) {
  auto st = caf::make_counted<future_state<T>>();
  st->set_error(std::move(err));
  return make_future<T>(std::move(st));
}

} // namespace internal

/// A future that is already complete with `value`.
template <class T>
future<std::decay_t<T>> make_ready_future(T&& value) {
  promise<std::decay_t<T>> p;
  p.set_value(std::forward<T>(value));
  return p.get_future();
}

inline future<void> make_ready_future() {
  promise<void> p;
  p.set_value();
  return p.get_future();
}

} // namespace weave
