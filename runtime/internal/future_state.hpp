#pragma once

// Internal: the shared state behind `future<T>` and `promise<T>`.
//
// One reference-counted object holds the outcome (a value or a
// `caf::error`), the continuations registered by `then()`, the number of
// live promises and what waiters park on. It carries nothing an executor
// needs: a submitted function's state is a `function_job` (see
// function_job.hpp), which adds the job part in the same allocation.
//
// Completion is claimed by one compare-and-swap (`pending -> claimed`); the
// winner stores the outcome with no lock held, then publishes it
// (`claimed -> ready`) under `mtx_`, which guards only the continuation list
// and the waiter count. Continuations run after `mtx_` is released; `take()`
// hands the value out once through an atomic flag, again without the lock.
// So no user code (continuations, the value's constructors and destructor,
// the captures of a continuation) ever runs while `mtx_` is held.
//
// A wait that a `stop_token` may end registers a stop callback of weave's
// own (no user code) that takes `mtx_` and wakes the waiters; it is
// registered before and deregistered after the waiter holds `mtx_`.
//
// Thread-safety: every member may be called from any thread. Publishing
// happens-before `ready()` returns true, before waiters wake and before the
// continuations run.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"
#include "caf/intrusive_ptr.hpp"
#include "caf/ref_counted.hpp"
#include "caf/timespan.hpp"
#include "caf/unit.hpp"

#include "runtime/error.hpp"
#include "runtime/internal/callback.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/internal/stop_notifier.hpp"
#include "runtime/stop_token.hpp"

namespace weave {

template <class T>
class future;

namespace internal {

/// Throws `would_deadlock` if the calling thread must not block.
void check_may_block(const char* operation);

/// How long waiters spin before parking (set from the runtime's config).
caf::timespan spin_duration() noexcept;
void set_spin_duration(caf::timespan value) noexcept;

/// Spins until `phase` holds `target` or the spin budget is used up.
bool spin_until(const std::atomic<uint8_t>& phase, uint8_t target) noexcept;

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

template <class T>
class future_state : public caf::ref_counted {
public:
  using value_type = std::conditional_t<std::is_void<T>::value, caf::unit_t, T>;

  future_state() = default;
  future_state(const future_state&) = delete;
  future_state& operator=(const future_state&) = delete;

  bool ready() const noexcept {
    return phase_.load(std::memory_order_acquire) == ready_phase;
  }

  /// Completes with a value; false if an outcome was there first. If the
  /// value's constructor throws, the state completes with that error and
  /// the exception propagates.
  template <class... Us>
  bool set_value(Us&&... xs) {
    if (!claim())
      return false;
    try {
      value_.emplace(std::forward<Us>(xs)...);
    } catch (...) {
      error_ = current_exception_error();
      publish_claimed();
      throw;
    }
    publish_claimed();
    return true;
  }

  bool set_error(caf::error err) noexcept {
    if (!claim())
      return false;
    if (err)
      error_ = std::move(err);
    else // an empty error would read as "no error, and no value"
      error_ = make_error(errc::invalid_argument,
                          "a future was completed with an empty error");
    publish_claimed();
    return true;
  }

  /// Completes with `reason` if the work behind the state has not started
  /// (executor jobs); a plain promise's state simply completes with it.
  virtual bool cancel(caf::error reason) noexcept {
    return set_error(std::move(reason));
  }

  void wait() {
    if (ready() || spin_until(phase_, ready_phase))
      return;
    self_wait_scope scope{begin_self_wait()};
    std::unique_lock<std::mutex> lock{mtx_};
    ++waiters_;
    cv_.wait(lock, [this] { return ready(); });
    --waiters_;
  }

  /// Waits until `tp` (`time_point::max()`: without a limit).
  bool wait_until(steady_clock::time_point tp) {
    if (ready())
      return true;
    if (tp == steady_clock::time_point::max()) {
      wait();
      return true;
    }
    std::unique_lock<std::mutex> lock{mtx_};
    ++waiters_;
    auto ok = cv_.wait_until(lock, tp, [this] { return ready(); });
    --waiters_;
    return ok;
  }

  /// Waits until ready, until `tp` (`time_point::max()`: without a limit)
  /// or until `tok` is stopped; true if ready.
  bool wait_until(steady_clock::time_point tp, const stop_token& tok) {
    if (ready())
      return true;
    if (!tok.stop_possible())
      return wait_until(tp);
    if (tok.stop_requested())
      return false;
    self_wait_scope scope{tp == steady_clock::time_point::max()
                            ? begin_self_wait()
                            : nullptr};
    // Armed before `mtx_` is taken, let go after it is released (see
    // stop_notifier.hpp).
    stop_notifier hook;
    arm(hook, tok, {&mtx_, &cv_, nullptr});
    {
      std::unique_lock<std::mutex> lock{mtx_};
      ++waiters_;
      auto pred = [this, &tok] { return ready() || tok.stop_requested(); };
      if (tp == steady_clock::time_point::max())
        cv_.wait(lock, pred);
      else
        cv_.wait_until(lock, tp, pred);
      --waiters_;
    }
    return ready();
  }

  /// Moves the outcome out. Call only when ready.
  caf::expected<T> take() {
    if (error_)
      return error_;
    if (retrieved_.exchange(true, std::memory_order_acq_rel))
      return make_error(errc::already_retrieved,
                        "the future's value was already taken by get() or "
                        "then()");
    if constexpr (std::is_void<T>::value)
      return caf::unit;
    else
      return caf::expected<T>{std::move(*value_)};
  }

  /// The error, if the state completed with one (empty otherwise, and
  /// before completion). Reading it takes nothing.
  const caf::error& error() const noexcept {
    return error_;
  }

  /// True once `take()` has handed the value out (an error is never taken:
  /// it reads the same every time).
  bool value_taken() const noexcept {
    return retrieved_.load(std::memory_order_acquire);
  }

  /// Runs `cb` once on completion: now if already complete.
  void on_complete(callback cb) {
    {
      std::unique_lock<std::mutex> lock{mtx_};
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

  void release_promise() noexcept {
    if (promises_.fetch_sub(1, std::memory_order_acq_rel) == 1 && !ready())
      set_error(make_error(errc::broken_promise,
                           "every promise of this future was destroyed "
                           "before it was set"));
  }

protected:
  /// The job whose run completes this state, if an executor runs it.
  virtual const job* executor_job() const noexcept {
    return nullptr;
  }

  /// Runs once, right after the outcome is published and before the
  /// continuations, with no lock held.
  virtual void completed() noexcept {
    // nop
  }

  /// For executors: stores a value without publishing it. Another outcome
  /// may still win (an executor abandoning the job); then this value is
  /// never read and goes away with the state.
  template <class... Us>
  void stage_value(Us&&... xs) {
    value_.emplace(std::forward<Us>(xs)...);
  }

  /// Publishes the staged value unless an outcome was there first.
  bool publish_staged() noexcept {
    if (!claim())
      return false;
    publish_claimed();
    return true;
  }

  /// Destroys what the state holds for the user (value, error,
  /// continuations) ahead of the state itself, for a state whose memory
  /// outlives its last reference (a job's embedded stop state). Call only
  /// once no reference is left, with no lock held.
  void release_contents() noexcept {
    value_.reset();
    error_ = caf::error{};
    std::vector<callback>{}.swap(callbacks_);
  }

private:
  /// Ends what `begin_self_wait` recorded.
  struct self_wait_scope {
    self_wait_guard* guard;
    ~self_wait_scope() {
      if (guard != nullptr)
        guard->end_wait();
    }
  };

  /// A pool worker waiting without a limit for a job queued in its own pool
  /// might be the last worker that could run it: the pool records the wait
  /// (or throws `would_deadlock`). Null when there is nothing to record.
  self_wait_guard* begin_self_wait() {
    auto guard = current_self_wait_guard();
    auto awaited = guard != nullptr ? executor_job() : nullptr;
    if (awaited == nullptr || !awaited->queued_on_owner()
        || !guard->begin_wait(*awaited))
      return nullptr;
    return guard;
  }

  static constexpr uint8_t pending_phase = 0;
  static constexpr uint8_t claimed_phase = 1;
  static constexpr uint8_t ready_phase = 2;

  bool claim() noexcept {
    auto expected = pending_phase;
    return phase_.compare_exchange_strong(expected, claimed_phase,
                                          std::memory_order_acq_rel);
  }

  void publish_claimed() noexcept {
    std::vector<callback> cbs;
    {
      std::unique_lock<std::mutex> lock{mtx_};
      phase_.store(ready_phase, std::memory_order_release);
      cbs.swap(callbacks_);
      if (waiters_ > 0)
        cv_.notify_all();
    }
    completed();
    for (auto& cb : cbs)
      cb();
  }

  std::atomic<uint8_t> phase_{pending_phase};
  std::atomic<bool> retrieved_{false};
  std::atomic<size_t> promises_{0};
  std::mutex mtx_;
  std::condition_variable cv_;
  size_t waiters_ = 0;
  std::vector<callback> callbacks_;
  std::optional<value_type> value_;
  caf::error error_;
};

template <class T>
using future_state_ptr = caf::intrusive_ptr<future_state<T>>;

/// Completes `st` with `res` (value or error).
template <class T>
void fulfil(future_state<T>& st, caf::expected<T>&& res) {
  if (!res)
    st.set_error(std::move(res.error()));
  else if constexpr (std::is_void<T>::value)
    st.set_value();
  else
    st.set_value(std::move(*res));
}

/// Completes `st` with the result of `fn(args...)`, or with the error of
/// the exception it throws (`job_failed`).
template <class T, class F, class... Args>
void fulfil_with(future_state<T>& st, F& fn, Args&&... args) noexcept {
  try {
    if constexpr (std::is_void<T>::value) {
      fn(std::forward<Args>(args)...);
      st.set_value();
    } else {
      st.set_value(fn(std::forward<Args>(args)...));
    }
  } catch (...) {
    st.set_error(current_exception_error());
  }
}

template <class T>
future<T> make_future(future_state_ptr<T> st);

} // namespace internal
} // namespace weave
