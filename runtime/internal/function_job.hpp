#pragma once

// Internal: a function submitted to an executor, and the future it completes,
// in one allocation.
//
// `function_job<T, F>` is a `future_state<T>` (what the caller's future
// refers to) and a `job` (what the executor queues and runs); the job's
// reference count is the state's. `run()` calls the function and stages its
// value, `deliver()` publishes it: an executor that keeps counters counts in
// between, so whoever sees the outcome also sees the counters include it. An
// executor that abandons the running job at a shutdown deadline `drop`s it
// instead: the caller hears `shut_down` at once, and the staged value, if it
// ever comes, is never read.
//
// A function that takes a `stop_token` gets one of a stop state embedded in
// the job (job_stop.hpp): when the job's count reaches zero, the job
// releases its value and continuations at once, and its memory goes with
// the last token.
//
// Thread-safety: as `job` and `future_state`.

#include <optional>
#include <type_traits>
#include <utility>

#include "runtime/internal/future_state.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/internal/job_stop.hpp"
#include "runtime/labeled.hpp"

namespace weave::internal {

template <class T, class F>
class function_job final : public future_state<T>, public job {
public:
  explicit function_job(F fn)
    : fn_(std::in_place, std::move(fn)), stop_(&destroy, this) {
    // nop
  }

  /// The job's count reached zero. With an embedded stop state, what the
  /// job holds for the user goes now and its memory with the last token.
  void request_deletion(bool decremented_rc) const noexcept override {
    if constexpr (takes_stop_token_v<F>) {
      auto* self = const_cast<function_job*>(this);
      self->release_contents();
      self->stop_.release_job(); // may delete this
    } else {
      future_state<T>::request_deletion(decremented_rc);
    }
  }

  bool run() noexcept override {
    bool ok = true;
    try {
      if constexpr (std::is_void<T>::value) {
        stop_.call(*fn_);
        this->stage_value();
      } else {
        this->stage_value(stop_.call(*fn_));
      }
    } catch (...) {
      failure = current_exception_error();
      ok = false;
    }
    // Finished first, then waits out a stopper that saw it running: a stop
    // requested while it ran (`cancel()` returned true) is seen below.
    fn_.reset();
    mark_finished();
    wait_while_stopping();
    if (auto cause = stop_.cause(); cause != errc{}) {
      failure = stopped_job_error(cause);
      ok = false;
    }
    return ok;
  }

  bool takes_stop_token() const noexcept override {
    return takes_stop_token_v<F>;
  }

  job_description describe() const noexcept override {
    return {"submit", fn_ ? label_of(*fn_) : std::string_view{}};
  }

  bool request_stop(errc cause) noexcept override {
    return stop_.request(cause);
  }

  bool stopped() const noexcept override {
    return stop_.cause() != errc{};
  }

  void deliver() noexcept override {
    if (failure)
      this->set_error(failure);
    else
      this->publish_staged();
  }

  bool drop(caf::error reason) noexcept override {
    return this->set_error(std::move(reason));
  }

  /// Before the job started: it never runs. While it runs and takes a
  /// token: its stop is requested (see job_stop.hpp).
  bool cancel(caf::error reason) noexcept override {
    if (cancel_with(std::move(reason)))
      return true;
    // Answered already (a grace period or a shutdown gave up on it).
    if (this->ready())
      return false;
    return stop_running(errc::cancelled);
  }

protected:
  const job* executor_job() const noexcept override {
    return this;
  }

  void ref_job() const noexcept override {
    this->ref();
  }

  void deref_job() const noexcept override {
    this->deref();
  }

private:
  static void destroy(const void* self) noexcept {
    delete static_cast<const function_job*>(self);
  }

  // Both bases offer these; the most derived one is the unambiguous match.
  friend void intrusive_ptr_add_ref(const function_job* j) noexcept {
    j->ref();
  }

  friend void intrusive_ptr_release(const function_job* j) noexcept {
    j->deref();
  }

  // Reset once it returned: its captures (buffers, sockets, ...) go when
  // the job ends, not when the last reference to the job does (a timer
  // entry may hold one until the job's deadline).
  std::optional<F> fn_;
  job_stop<takes_stop_token_v<F>> stop_;
};

} // namespace weave::internal
