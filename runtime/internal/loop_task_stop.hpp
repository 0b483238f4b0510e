#pragma once

// Internal: calling a loop task's function with or without a `stop_token`,
// and deciding its outcome once a stop was requested.
//
// A submitted function takes `()`, `(loop_context&)`, `(stop_token)` or
// `(loop_context&, stop_token)`; the first that fits, in the order
// `(loop_context&, stop_token)`, `(loop_context&)`, `(stop_token)`, `()`,
// is how it is called. A function without a token gets `loop_task_stop<false>`,
// an empty base (no allocation, no atomic, no byte).
//
// A task that takes a token may finish later (it returns a `future<T>`), so
// its stop can be requested long after its function returned, from any
// thread, and the request may even complete the task's own future from
// inside a stop callback on the requesting thread. So the outcome is
// decided by one atomic word, not by the job's state: `request(cause)`
// swaps 0 for the cause and then runs the token's callbacks (no lock
// held); `settle()`, called once when the task's own outcome is there,
// swaps 0 for `settled`. Whoever swaps first decides: a stop requested
// before the task settled makes the stop's cause the outcome (as for pool
// jobs, see job_stop.hpp); a stop requested after it settled changes
// nothing (`too_late`). Neither side waits for the other.
//
// `task_deadline_job` is the runtime timer's entry for a token-taking task
// with a deadline (loop_impl.cpp arms it).
//
// Thread-safety: every member may be called from any thread.

#include <atomic>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "runtime/error.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/stop_token.hpp"

namespace weave {

class loop_context;

namespace internal {

/// How a loop task's function is called.
enum class loop_fn_form { plain, context, token, context_token };

template <class F>
constexpr loop_fn_form loop_fn_form_v
  = std::is_invocable<F&, loop_context&, stop_token>::value
      ? loop_fn_form::context_token
    : std::is_invocable<F&, loop_context&>::value ? loop_fn_form::context
    : std::is_invocable<F&, stop_token>::value    ? loop_fn_form::token
                                                  : loop_fn_form::plain;

/// True if a loop task's function `F` is called with a `stop_token`.
template <class F>
constexpr bool loop_takes_token_v = loop_fn_form_v<F> == loop_fn_form::token
                                    || loop_fn_form_v<F>
                                         == loop_fn_form::context_token;

template <class F>
constexpr void check_loop_fn() {
  static_assert(!(loop_fn_form_v<F> == loop_fn_form::plain
                  && !std::is_invocable<F&>::value
                  && std::is_invocable<F&, stop_token, loop_context&>::value),
                "loop::submit: a function that takes both takes them as "
                "(weave::loop_context&, weave::stop_token), in that order");
  static_assert(loop_fn_form_v<F> != loop_fn_form::plain
                  || std::is_invocable<F&>::value,
                "loop::submit: the function must take (), "
                "(weave::loop_context&), (weave::stop_token) or "
                "(weave::loop_context&, weave::stop_token)");
}

/// Calls `fn` in the form `loop_fn_form_v<F>` says (`tok` unused without
/// a token).
template <class F, class Token>
decltype(auto) call_loop_fn(F& fn, loop_context& cx, Token&& tok) {
  constexpr auto form = loop_fn_form_v<F>;
  if constexpr (form == loop_fn_form::context_token)
    return fn(cx, std::forward<Token>(tok));
  else if constexpr (form == loop_fn_form::context)
    return fn(cx);
  else if constexpr (form == loop_fn_form::token)
    return fn(std::forward<Token>(tok));
  else
    return fn();
}

/// What a loop task's function returns.
template <class F>
struct submit_result {
  using type = decltype(call_loop_fn(std::declval<F&>(),
                                     std::declval<loop_context&>(),
                                     std::declval<stop_token>()));
};

/// What a stop request found.
enum class stop_claim {
  /// This request made the stop: the task's outcome is its cause.
  first,
  /// A stop was requested before: the task's outcome is that one's cause.
  again,
  /// The task settled first (or takes no token): nothing changes.
  too_late,
};

/// The stop state of a task whose function takes no token: nothing.
template <bool TakesToken>
class loop_task_stop {
public:
  template <class F>
  decltype(auto) stop_call(F& fn, loop_context& cx) {
    return call_loop_fn(fn, cx, stop_token{});
  }

  stop_claim stop_request(errc) noexcept {
    return stop_claim::too_late;
  }

  /// Claims the outcome for the task: `errc{}`, its own outcome stands.
  static constexpr errc stop_settle() noexcept {
    return errc{};
  }

  bool stop_unsettled() const noexcept {
    return false;
  }
};

/// The stop state of a task whose function takes a `stop_token`.
template <>
class loop_task_stop<true> {
public:
  template <class F>
  decltype(auto) stop_call(F& fn, loop_context& cx) {
    return call_loop_fn(fn, cx, source_.get_token());
  }

  /// Requests the stop with `cause` unless the task settled; the token's
  /// callbacks run on this thread, no lock held.
  stop_claim stop_request(errc cause) noexcept {
    uint8_t expected = 0;
    if (!word_.compare_exchange_strong(expected, static_cast<uint8_t>(cause),
                                       std::memory_order_acq_rel))
      return expected == settled ? stop_claim::too_late : stop_claim::again;
    try {
      source_.request_stop(cause);
    } catch (...) {
      // Only an invalid cause throws; weave passes none.
    }
    return stop_claim::first;
  }

  /// Claims the outcome for the task's own result: `errc{}` if no stop
  /// came first (or it settled before: a value whose constructor threw
  /// while it was stored), else the stop's cause (the outcome).
  errc stop_settle() noexcept {
    uint8_t expected = 0;
    if (word_.compare_exchange_strong(expected, settled,
                                      std::memory_order_acq_rel)
        || expected == settled)
      return errc{};
    return static_cast<errc>(expected);
  }

  /// True until the task settled or a stop was requested.
  bool stop_unsettled() const noexcept {
    return word_.load(std::memory_order_acquire) == 0;
  }

private:
  /// Never an `errc` value.
  static constexpr uint8_t settled = 0xFF;

  std::atomic<uint8_t> word_{0};
  stop_source source_;
};

/// A token-taking task's deadline (a deadline scope's, at submit): at the
/// deadline the timer "drops" the entry, which answers the task `timeout`
/// if it has not started and otherwise requests its stop with `timeout`
/// (its stop callbacks run on the timer's thread, no lock held). The entry
/// holds the task until then, or until a sweep finds the task complete.
class task_deadline_job final : public counted_job {
public:
  explicit task_deadline_job(job_ptr task) : task_(std::move(task)) {
    deadline = task_->deadline;
  }

  bool run() noexcept override {
    return true; // never queued on an executor: only the timer drops it
  }

  bool drop(caf::error) noexcept override {
    if (!task_->cancel_with(make_error(errc::timeout,
                                       "the loop task's deadline passed "
                                       "before it started")))
      task_->request_stop(errc::timeout);
    return true;
  }

  bool timer_entry_live() const noexcept override {
    return task_->timer_entry_live();
  }

private:
  job_ptr task_;
};

} // namespace internal
} // namespace weave
