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
///   throws `already_retrieved`.
/// - `wait()`, `wait_for(timeout)`, `done()`.
/// - `then(cb)`: `cb(caf::expected<T>)` runs exactly once, when the future
///   completes. It runs on the thread that completes the future (a pool
///   worker, the loop's thread, ...), or immediately on the calling thread if
///   the future is already complete. `then` returns a `future<R>` for `cb`'s
///   result; if `cb` returns a `future<U>`, the result is a `future<U>` that
///   completes with it. `then` consumes the value, like `get()`.
/// - `cancel()`: a job that has not started never runs, and its future
///   completes with `cancelled`. Returns false once the job has started.
///
/// Blocking rules (promise 5): `get`, `wait` and `wait_for` refuse to run on a
/// thread that must never block (a CAF scheduler or clock thread, an event
/// loop's own thread) and throw `would_deadlock` instead of hanging. weave
/// knows these threads because it names them when CAF starts them (a CAF
/// thread hook) and when a loop starts; see `this_thread_must_not_block()`.
/// Inside an event-based actor, use `then` or `offload` instead.
///
/// Waiting spins briefly (the runtime's `weave.spin`, 50 µs by default) before
/// parking on a condition variable, so a result that arrives quickly is seen
/// without a futex round trip.
///
/// Thread-safety: all members may be called from any thread. Completion
/// happens-before `get()`/`wait()` return and before a `then` callback runs.
/// `future` and `promise` are cheap handles to a shared state; copies refer
/// to the same result. When every `promise` of a pending state is gone, the
/// future completes with `broken_promise`: nobody waits forever.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "caf/expected.hpp"
#include "caf/make_counted.hpp"
#include "caf/timespan.hpp"
#include "caf/unit.hpp"

#include "runtime/error.hpp"
#include "runtime/internal/job.hpp"

namespace weave {

template <class T>
class future;

template <class T>
class promise;

namespace internal {

/// Throws `would_deadlock` if the calling thread must not block.
void check_may_block(const char* operation);

/// How long waiters spin before parking (set from the runtime's config).
caf::timespan spin_duration() noexcept;
void set_spin_duration(caf::timespan value) noexcept;

/// Spins until `flag` is true or the spin budget is used up.
bool spin_until_set(const std::atomic<bool>& flag) noexcept;

template <class T>
struct is_future : std::false_type {};

template <class T>
struct is_future<future<T>> : std::true_type {};

template <class T>
struct unwrap_future {
  using type = T;
};

template <class T>
struct unwrap_future<future<T>> {
  using type = T;
};

/// The shared state of a future. It is a job, so that an executor can hold
/// the very same object: one allocation per submitted function.
template <class T>
class future_state : public job {
public:
  using value_type = std::conditional_t<std::is_void<T>::value, caf::unit_t, T>;

  bool run() noexcept override {
    // A plain promise's state is never run by an executor.
    return true;
  }

  bool drop(caf::error reason) noexcept override {
    return set_error(std::move(reason));
  }

  bool ready() const noexcept {
    return ready_.load(std::memory_order_acquire);
  }

  template <class... Us>
  bool set_value(Us&&... xs) {
    return complete([&] { value_.emplace(std::forward<Us>(xs)...); });
  }

  bool set_error(caf::error err) {
    return complete([&] { error_ = std::move(err); });
  }

  /// Stores an outcome without publishing it (see job::deliver).
  template <class... Us>
  void stage_value(Us&&... xs) {
    std::unique_lock<std::mutex> guard{mtx_};
    if (!ready())
      value_.emplace(std::forward<Us>(xs)...);
  }

  void stage_error(caf::error err) {
    std::unique_lock<std::mutex> guard{mtx_};
    if (!ready())
      error_ = std::move(err);
  }

  /// Publishes the staged outcome.
  void publish() {
    complete([] {});
  }

  void wait() {
    if (ready() || spin_until_set(ready_))
      return;
    // A pool worker waiting for a job queued in its own pool might be the
    // last worker that could run it.
    auto self_guard = current_self_wait_guard();
    if (self_guard == nullptr || owner == nullptr
        || current_state() != state::queued || !self_guard->begin_wait(*this))
      self_guard = nullptr;
    struct end_guard {
      self_wait_guard* g;
      ~end_guard() {
        if (g != nullptr)
          g->end_wait();
      }
    } ender{self_guard};
    std::unique_lock<std::mutex> guard{mtx_};
    ++waiters_;
    cv_.wait(guard, [this] { return ready(); });
    --waiters_;
  }

  bool wait_until(steady_clock::time_point tp) {
    if (ready())
      return true;
    std::unique_lock<std::mutex> guard{mtx_};
    ++waiters_;
    auto ok = cv_.wait_until(guard, tp, [this] { return ready(); });
    --waiters_;
    return ok;
  }

  /// Moves the outcome out. Call only when ready.
  caf::expected<T> take() {
    std::unique_lock<std::mutex> guard{mtx_};
    if (error_)
      return error_;
    if (retrieved_)
      return make_error(errc::already_retrieved,
                        "the future's value was already taken by get() or "
                        "then()");
    retrieved_ = true;
    if constexpr (std::is_void<T>::value)
      return caf::unit;
    else
      return caf::expected<T>{std::move(*value_)};
  }

  /// Runs `cb` once on completion: now if already complete.
  void on_complete(callback cb) {
    {
      std::unique_lock<std::mutex> guard{mtx_};
      if (!ready()) {
        callbacks_.emplace_back(std::move(cb));
        return;
      }
    }
    cb();
  }

  void add_promise() noexcept {
    promises_.fetch_add(1, std::memory_order_relaxed);
  }

  void release_promise() {
    if (promises_.fetch_sub(1, std::memory_order_acq_rel) == 1 && !ready())
      set_error(make_error(errc::broken_promise,
                           "every promise of this future was destroyed "
                           "before it was set"));
  }

private:
  template <class Setter>
  bool complete(Setter setter) {
    std::vector<callback> cbs;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      if (ready())
        return false;
      setter();
      ready_.store(true, std::memory_order_release);
      cbs.swap(callbacks_);
      if (waiters_ > 0)
        cv_.notify_all();
    }
    mark_finished();
    for (auto& cb : cbs)
      cb();
    return true;
  }

  std::mutex mtx_;
  std::condition_variable cv_;
  std::atomic<bool> ready_{false};
  std::atomic<size_t> promises_{0};
  size_t waiters_ = 0;
  bool retrieved_ = false;
  std::optional<value_type> value_;
  caf::error error_;
  std::vector<callback> callbacks_;
};

template <class T>
using future_state_ptr = caf::intrusive_ptr<future_state<T>>;

/// Completes `st` with `res` (value or error).
template <class T>
void fulfil(future_state<T>& st, caf::expected<T>&& res) {
  if (!res)
    st.set_error(res.error());
  else if constexpr (std::is_void<T>::value)
    st.set_value();
  else
    st.set_value(std::move(*res));
}

/// Completes `st` with the result of `fn(args...)`, or with `job_failed`.
template <class T, class F, class... Args>
bool fulfil_with(future_state<T>& st, F& fn, Args&&... args) noexcept {
  try {
    if constexpr (std::is_void<T>::value) {
      fn(std::forward<Args>(args)...);
      st.set_value();
    } else {
      st.set_value(fn(std::forward<Args>(args)...));
    }
    return true;
  } catch (...) {
    st.failure = current_exception_error();
    st.set_error(st.failure);
    return false;
  }
}

/// Like `fulfil_with`, but only stages the outcome; `publish()` makes it
/// visible.
template <class T, class F>
bool stage_with(future_state<T>& st, F& fn) noexcept {
  try {
    if constexpr (std::is_void<T>::value) {
      fn();
      st.stage_value();
    } else {
      st.stage_value(fn());
    }
    return true;
  } catch (...) {
    st.failure = current_exception_error();
    st.stage_error(st.failure);
    return false;
  }
}

/// A future state that runs `F` on an executor and publishes on deliver().
template <class T, class F>
class function_job final : public future_state<T> {
public:
  explicit function_job(F fn) : fn_(std::move(fn)) {
  }

  bool run() noexcept override {
    return stage_with(*this, fn_);
  }

  void deliver() noexcept override {
    this->publish();
  }

private:
  F fn_;
};

template <class T>
future<T> make_future(future_state_ptr<T> st) {
  return future<T>{std::move(st)};
}

} // namespace internal

/// The outcome of a job: a value or a `caf::error`.
template <class T>
using result = caf::expected<T>;

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

  /// Waits at most `timeout`; true if the future is done.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) {
    internal::check_may_block("future::wait_for");
    if (timeout < timeout.zero())
      raise(make_error(errc::invalid_argument,
                       "future::wait_for: negative timeout"));
    auto& st = checked_state();
    if (st.ready())
      return true;
    if (timeout == timeout.zero())
      return false;
    auto tp = internal::steady_clock::now()
              + std::chrono::duration_cast<internal::steady_clock::duration>(
                timeout);
    return st.wait_until(tp);
  }

  /// Cancels the job if it has not started: it never runs and the future
  /// completes with `cancelled`. False if it already started or completed.
  bool cancel() {
    return checked_state().cancel_with(
      make_error(errc::cancelled, "cancelled before it started"));
  }

  /// Attaches a continuation; see the header comment.
  template <class F>
  auto then(F cb) {
    using r0 = std::invoke_result_t<F, result<T>>;
    using r = typename internal::unwrap_future<r0>::type;
    auto next = caf::make_counted<internal::future_state<r>>();
    auto self = checked_state_ptr();
    self->on_complete(internal::callback{
      [self, next, cb = std::move(cb)]() mutable {
        if constexpr (internal::is_future<r0>::value) {
          try {
            auto inner = cb(self->take());
            inner.checked_state().on_complete(internal::callback{
              [inner, next]() mutable {
                internal::fulfil(*next, inner.state_->take());
              }});
          } catch (...) {
            next->set_error(internal::current_exception_error());
          }
        } else {
          internal::fulfil_with(*next, cb, self->take());
        }
      }});
    return internal::make_future(std::move(next));
  }

private:
  template <class>
  friend class future;

  template <class>
  friend class promise;

  template <class U>
  friend future<U> internal::make_future(internal::future_state_ptr<U>);

  explicit future(internal::future_state_ptr<T> st) : state_(std::move(st)) {
  }

  internal::future_state<T>& checked_state() const {
    if (!state_)
      raise(make_error(errc::invalid_argument, "the future has no state"));
    return *state_;
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
