#pragma once

// Internal: the work a loop runs, and the futures it owes.
//
// - `loop_message` carries a job into the loop's actor.
// - `submit_job<T, F>`: a submitted function, its future's state and its
//   place in the loop's list of pending futures, in one allocation; for a
//   function that takes a `stop_token`, also its stop state, which decides
//   the outcome once a stop was requested (see loop_task_stop.hpp).
// - `post_job<F>`: a posted function (or a timer's or a channel's delivery);
//   nobody waits for it.
// - `bound_state<T>`: the state of a future made by `loop_context` (sleep,
//   offload, request). The carriers that complete it (a delayed message, a
//   response handler) run inside the loop; if the loop ends first, they are
//   destroyed wherever CAF drops them (a timer thread, a pool worker), and
//   that must not complete anything there. So a carrier holds the state
//   without owning its outcome, and the loop, which lists every such state,
//   fails what is left with `shut_down` when it ends, on its own thread.
//
// Every future a loop owes is a `loop_pending` in its list (which holds a
// reference); completing the future unlinks it (`completed()`), and the loop's
// end fails the rest. Thread-safety: the list belongs to `loop_impl` and its
// mutex; a node's `loop` is set before the node is linked and never changes.

#include <chrono>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "caf/allowed_unsafe_message_type.hpp"
#include "caf/error.hpp"
#include "caf/ref_counted.hpp"
#include "caf/timespan.hpp"

#include "runtime/future.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/internal/job_stop.hpp"
#include "runtime/internal/loop_task_stop.hpp"
#include "runtime/labeled.hpp"

namespace weave {

class loop_context;

namespace internal {

class loop_impl;

/// Timers at least this long never fire (CAF's clock would overflow); their
/// futures end with `shut_down` when the loop ends.
constexpr caf::timespan max_timer_delay = std::chrono::hours{24 * 365 * 100};

/// The message that carries work into a loop.
struct loop_message {
  job_ptr task;
};

/// A future that a loop owes; see the header comment.
class loop_pending {
public:
  /// Completes the future with `reason`; false if it was already complete.
  virtual bool fail(caf::error reason) noexcept = 0;

  /// The reference count of the object this node is part of.
  virtual caf::ref_counted& counted() noexcept = 0;

  /// The loop that lists this node (set before linking, before the future
  /// is handed out; taken by the future's completion, see forget_pending).
  std::shared_ptr<loop_impl> loop;
  loop_pending* prev_pending = nullptr;
  loop_pending* next_pending = nullptr;
  bool linked = false;
  /// A context future: its continuations must run inside the loop, so it is
  /// failed only when the loop ends, never from another thread before.
  bool loop_bound = false;

protected:
  virtual ~loop_pending() = default;
};

/// Unlinks `p` from its loop once its future completed.
void forget_pending(loop_pending& p) noexcept;

/// Lists a context future on `impl`; false if the loop already ended.
bool adopt_pending(loop_impl& impl, loop_pending& p);

/// The error for work offered to a loop that ended.
caf::error loop_ended_error(const loop_impl& impl);

/// The loop context of the calling thread while it runs a loop's work.
loop_context* current_loop_context() noexcept;

template <class F>
decltype(auto) invoke_with_context(F& fn, loop_context& cx) {
  if constexpr (std::is_invocable<F&, loop_context&>::value)
    return fn(cx);
  else
    return fn();
}

/// Completes `st` with `cause`'s error if a stop came first (`cause` not
/// `errc{}`); true if it did.
template <class T>
bool complete_stopped(future_state<T>& st, errc cause) noexcept {
  if (cause == errc{})
    return false;
  st.set_error(stopped_job_error(cause));
  return true;
}

template <class T, class F>
class submit_job final : public future_state<T>,
                         public job,
                         public loop_pending,
                         private loop_task_stop<loop_takes_token_v<F>> {
public:
  static constexpr bool takes_token = loop_takes_token_v<F>;

  explicit submit_job(F fn) : fn_(std::in_place, std::move(fn)) {
    // nop
  }

  bool run() noexcept override {
    using r0 = typename submit_result<F>::type;
    auto& cx = *current_loop_context();
    bool ok = true;
    try {
      if constexpr (is_future<r0>::value) {
        // Finishes later: completes when the returned future does.
        auto inner = this->stop_call(*fn_, cx);
        auto inner_state = state_of(inner);
        if (!inner_state)
          raise(make_error(errc::invalid_argument,
                           "the submitted function returned an invalid "
                           "future"));
        caf::intrusive_ptr<submit_job> self{this};
        inner_state->on_complete(callback{[self, inner_state] {
          auto cause = self->stop_settle();
          // The outcome is there: the captures, which the work the
          // function started may use (like a coroutine's frame), go now,
          // before the outcome is published.
          self->fn_.reset();
          if (!complete_stopped(*self, cause))
            fulfil(*self, inner_state->take());
        }});
        // From here on the continuation owns `fn_` (it may have run).
        return ok_later();
      } else if constexpr (std::is_void<T>::value) {
        this->stop_call(*fn_, cx);
        fn_.reset(); // before the outcome is published (see below)
        if (!complete_stopped(*this, this->stop_settle()))
          this->set_value();
      } else {
        auto value = this->stop_call(*fn_, cx);
        fn_.reset(); // before the outcome is published (see below)
        if (!complete_stopped(*this, this->stop_settle()))
          this->set_value(std::move(value));
      }
    } catch (...) {
      // Its captures go once it returned, before its outcome is published,
      // not with the last reference to the task (its future, a deadline's
      // timer entry until the deadline), as for a pool's job.
      fn_.reset();
      // A stop requested before it threw is the outcome (see
      // loop_task_stop.hpp).
      if (!complete_stopped(*this, this->stop_settle()))
        this->set_error(current_exception_error());
      ok = false;
    }
    mark_finished();
    return ok;
  }

  bool drop(caf::error reason) noexcept override {
    return this->set_error(std::move(reason));
  }

  /// Queued: it never runs (as without a token). Started, with a token,
  /// and not yet complete (running, or finishing later): its stop is
  /// requested with `cancelled`; true, and the outcome is the stop's cause
  /// (the first one requested). Otherwise false.
  bool cancel(caf::error reason) noexcept override {
    if (cancel_with(std::move(reason)))
      return true;
    return request_stop(errc::cancelled);
  }

  /// The deadline's way in (see loop_impl.cpp): as `cancel`, with `cause`.
  bool request_stop(errc cause) noexcept override {
    if (stop_started(cause) == stop_claim::too_late)
      return false;
    note_stop(*this, cause); // for thread dumps
    return true;
  }

  bool takes_stop_token() const noexcept override {
    return takes_token;
  }

  job_description describe() const noexcept override {
    return {"loop submit", fn_ ? label_of(*fn_) : std::string_view{}};
  }

  /// A deadline's timer entry stays while the task may still be stopped.
  bool timer_entry_live() const noexcept override {
    return !this->ready() && this->stop_unsettled();
  }

  bool fail(caf::error reason) noexcept override {
    if (try_drop()) // it never ran, and never will
      return this->set_error(std::move(reason));
    // Started, with a token: it hears why before its future fails. A stop
    // callback may complete the task (with the stop's cause) before
    // `set_error` below: that still is this loop's failing it.
    auto claim = stop_started(errc::shut_down);
    return this->set_error(std::move(reason)) || claim == stop_claim::first;
  }

  caf::ref_counted& counted() noexcept override {
    return *this;
  }

protected:
  void completed() noexcept override {
    forget_pending(*this);
  }

  void ref_job() const noexcept override {
    this->ref();
  }

  void deref_job() const noexcept override {
    this->deref();
  }

private:
  friend void intrusive_ptr_add_ref(const submit_job* j) noexcept {
    j->ref();
  }

  friend void intrusive_ptr_release(const submit_job* j) noexcept {
    j->deref();
  }

  /// The end of `run` for a task that finishes later.
  bool ok_later() noexcept {
    mark_finished();
    return true;
  }

  /// Requests the stop if the task has started and takes a token.
  stop_claim stop_started(errc cause) noexcept {
    if constexpr (!takes_token) {
      return stop_claim::too_late;
    } else {
      auto st = current_state();
      if (st != state::running && st != state::finished)
        return stop_claim::too_late; // queued, or dropped: never runs
      if (this->ready())
        return stop_claim::too_late;
      return this->stop_request(cause);
    }
  }

  // Reset once it returned or its returned future completed (see `run`).
  std::optional<F> fn_;
};

template <class F>
class post_job final : public counted_job {
public:
  explicit post_job(F fn) : fn_(std::move(fn)) {
    // nop
  }

  bool run() noexcept override {
    bool ok = true;
    try {
      invoke_with_context(fn_, *current_loop_context());
    } catch (...) {
      failure = current_exception_error();
      ok = false;
    }
    mark_finished();
    return ok;
  }

  bool drop(caf::error) noexcept override {
    // A posted function has nobody to tell.
    return true;
  }

  job_description describe() const noexcept override {
    return {"loop post", label_of(fn_)};
  }

private:
  F fn_;
};

/// The state of a future made by `loop_context`; see the header comment.
template <class T>
class bound_state final : public future_state<T>, public loop_pending {
public:
  bool fail(caf::error reason) noexcept override {
    return this->set_error(std::move(reason));
  }

  caf::ref_counted& counted() noexcept override {
    return *this;
  }

protected:
  void completed() noexcept override {
    forget_pending(*this);
  }
};

template <class T>
using bound_ptr = caf::intrusive_ptr<bound_state<T>>;

/// A response handler that completes `st` with the value.
template <class T>
auto value_setter(bound_ptr<T> st) {
  if constexpr (std::is_void<T>::value)
    return [st] { st->set_value(); };
  else
    return [st](T x) { st->set_value(std::move(x)); };
}

/// A response handler that completes `st` with the error.
template <class T>
auto error_setter(bound_ptr<T> st) {
  return [st](caf::error& err) { st->set_error(std::move(err)); };
}

} // namespace internal
} // namespace weave

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(weave::internal::loop_message)
