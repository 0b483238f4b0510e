#pragma once

/// `offload`: run a blocking call on a pool from inside an actor, the C++
/// answer to `await loop.run_in_executor(pool, fn)`.
///
///     offload(self, [] { return read_config(); })        // default pool
///       .then([=](std::string& text) { ... },            // in the actor
///             [=](caf::error& err) { ... });
///     offload(self, io_pool, fn, 500ms)                  // own pool, timeout
///
/// The calling actor's scheduler thread never blocks: the job is queued on
/// the pool and its outcome comes back to the actor as a response message,
/// handled by CAF's own response machinery. So the handle offers what
/// `self->request(...)` offers: `.then(...)` / `.await(...)` for event-based
/// actors, `.receive(...)` for blocking actors and `scoped_actor`s (pass the
/// scoped actor itself).
///
/// - Results of any movable type (also move-only types and `void`; a `void`
///   job's value handler takes no arguments). The value handler may take the
///   result as `T`, `T&` or `const T&`; the error handler as `caf::error`,
///   `caf::error&` or `const caf::error&`. The value travels by pointer, so
///   it needs no CAF type registration.
/// - A job that throws completes with `weave::errc::job_failed`, carrying the
///   exception's message; the worker survives.
/// - Timeout (optional): after it, the error handler gets
///   `weave::errc::timeout`, the same error every other weave timeout is, so
///   one check covers them all. A job still queued then never runs, and a
///   result that arrives late is dropped, never delivered as if it were on
///   time. A timeout too large for the clock (`hours::max()`, ...) saturates
///   to "no timeout"; a negative or not-a-number one is refused at once with
///   `invalid_argument`, and the job never runs.
/// - `cancel()`: a job that has not started never runs; the error handler
///   gets `weave::errc::cancelled`.
/// - After shutdown the error handler runs at once with `shut_down`.
///
/// Thread-safety: call from the actor that receives the result, inside one of
/// its handlers (like `request`). The handle is bound to that actor.
/// Shutdown: the pool answers a queued job with `shut_down`; a running job
/// may finish until the runtime's deadline, after which its late result is
/// dropped and counted.

#include <chrono>
#include <optional>
#include <type_traits>
#include <utility>

#include "caf/actor_cast.hpp"
#include "caf/blocking_actor.hpp"
#include "caf/mailbox_element.hpp"
#include "caf/make_counted.hpp"
#include "caf/message_priority.hpp"
#include "caf/response_handle.hpp"
#include "caf/sec.hpp"
#include "caf/scoped_actor.hpp"
#include "caf/unit.hpp"

#include "runtime/blocking_pool.hpp"
#include "runtime/deadline_scope.hpp"
#include "runtime/error.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/internal/job_stop.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/labeled.hpp"
#include "runtime/runtime.hpp"

namespace weave {

namespace internal {

/// The message that tells an actor its offloaded job is done; the value
/// stays inside the job.
struct job_done {
  job_ptr ptr;
};

/// A job whose outcome goes to an actor as a response message.
template <class T>
class actor_job : public counted_job {
public:
  using value_type = std::conditional_t<std::is_void<T>::value, caf::unit_t, T>;

  actor_job(caf::strong_actor_ptr target, caf::message_id response_id)
    : target_(std::move(target)), response_id_(response_id) {
    // nop
  }

  bool drop(caf::error reason) noexcept override {
    send(std::move(reason));
    return true;
  }

  /// The result; it stays in the job while the value handler runs.
  value_type& value() {
    return *value_;
  }

protected:
  /// Sends `x` (a `job_done` or an error) as the response. One allocation:
  /// the mailbox element holds `x` itself, not a `caf::message` wrapping it.
  template <class X>
  void send(X&& x) noexcept {
    // Like a request's sender, the job holds the actor alive until it
    // answers; delivered once, then released.
    if (auto dest = std::move(target_))
      dest->enqueue(caf::make_mailbox_element(nullptr, response_id_, {},
                                              std::forward<X>(x)),
                    nullptr);
  }

  std::optional<value_type> value_;

protected:
  /// Destroys the value and lets go of the actor ahead of the job itself,
  /// for a job whose memory outlives its last reference (see job_stop.hpp).
  void release_contents() noexcept {
    value_.reset();
    target_.reset();
  }

private:
  caf::strong_actor_ptr target_;
  caf::message_id response_id_;
};

template <class T, class F>
class actor_job_impl final : public actor_job<T> {
public:
  actor_job_impl(caf::strong_actor_ptr target, caf::message_id response_id,
                 F fn)
    : actor_job<T>(std::move(target), response_id),
      fn_(std::in_place, std::move(fn)),
      stop_(&destroy, this) {
    // nop
  }

  /// The job's count reached zero. With an embedded stop state (see
  /// job_stop.hpp), its value and its target go now and its memory with
  /// the last token.
  void request_deletion(bool decremented_rc) const noexcept override {
    if constexpr (takes_stop_token_v<F>) {
      auto* self = const_cast<actor_job_impl*>(this);
      self->release_contents();
      self->stop_.release_job(); // may delete this
    } else {
      actor_job<T>::request_deletion(decremented_rc);
    }
  }

  bool run() noexcept override {
    bool ok = true;
    try {
      if constexpr (std::is_void<T>::value) {
        stop_.call(*fn_);
        this->value_.emplace();
      } else {
        this->value_.emplace(stop_.call(*fn_));
      }
    } catch (...) {
      ok = false;
      this->failure = current_exception_error();
    }
    // Finished first, then waits out a stopper that saw it running: a stop
    // requested while it ran (`cancel()` returned true) is seen below.
    fn_.reset();
    this->mark_finished();
    this->wait_while_stopping();
    if (auto cause = stop_.cause(); cause != errc{}) {
      ok = false;
      this->failure = stopped_job_error(cause);
    }
    return ok;
  }

  bool takes_stop_token() const noexcept override {
    return takes_stop_token_v<F>;
  }

  job_description describe() const noexcept override {
    return {"offload", fn_ ? label_of(*fn_) : std::string_view{}};
  }

  bool request_stop(errc cause) noexcept override {
    return stop_.request(cause);
  }

  bool stopped() const noexcept override {
    return stop_.cause() != errc{};
  }

  void deliver() noexcept override {
    if (!this->failure)
      this->send(job_done{job_ptr{this}});
    else
      this->send(this->failure);
  }

private:
  static void destroy(const void* self) noexcept {
    delete static_cast<const actor_job_impl*>(self);
  }

  // Reset once it returned: its captures (buffers, sockets, ...) go when
  // the job ends, not when the last reference to the job does (a timer
  // entry may hold one until the job's deadline).
  std::optional<F> fn_;
  job_stop<takes_stop_token_v<F>> stop_;
};

/// Wraps a user's value handler into a handler of `job_done`. The handler
/// may take the value as `T` (moved in), `T&` or `const T&`.
template <class T, class F>
auto unwrap_handler(F f) {
  return [f = std::move(f)](job_done& done) mutable {
    auto& j = static_cast<actor_job<T>&>(*done.ptr);
    if constexpr (std::is_void<T>::value) {
      f();
    } else if constexpr (std::is_invocable<F&, T&&>::value) {
      f(std::move(j.value()));
    } else {
      f(j.value());
    }
  };
}

/// The category of CAF's `sec` errors.
constexpr caf::atom_value caf_system_category = caf::atom("system");

/// True if `err` is CAF's `sec::request_timeout` (compared without building
/// an error object).
inline bool is_request_timeout(const caf::error& err) noexcept {
  return err && err.category() == caf_system_category
         && err.code() == static_cast<uint8_t>(caf::sec::request_timeout);
}

/// Wraps a user's error handler: CAF reports a missed response deadline as
/// `sec::request_timeout`; weave reports every timeout as `errc::timeout`,
/// so the user needs one check for all of them. The handler may take the
/// error as `caf::error`, `caf::error&` or `const caf::error&`. The wrapper
/// holds nothing but the handler: CAF keeps it for every outstanding
/// offload, so it adds no bytes to one.
template <class OnError>
auto weave_error_handler(OnError f,
                         const char* what = "offload: no result within its "
                                            "timeout") {
  return [f = std::move(f), what](caf::error& err) mutable {
    if (is_request_timeout(err))
      err = make_error(errc::timeout, what);
    f(err);
  };
}

template <class Self>
auto default_error_handler(Self* self) {
  if constexpr (std::is_base_of<caf::blocking_actor, Self>::value) {
    return [self](caf::error& err) { self->fail_state(std::move(err)); };
  } else {
    return [self](caf::error& err) { self->call_error_handler(err); };
  }
}

/// Timeouts at or beyond this mean "no timeout": far enough to be never in
/// practice, near enough that CAF's `now() + timeout` cannot overflow.
constexpr auto offload_timeout_forever = std::chrono::hours{24 * 365 * 100};

/// An offload's timeout after checking: refused (negative or not a number),
/// none, or a value CAF's clock can add to `now()`.
struct offload_timeout {
  bool refused = false;
  std::optional<caf::timespan> value;
};

template <class Rep, class Period>
offload_timeout make_offload_timeout(std::chrono::duration<Rep, Period> d) {
  using duration = std::chrono::duration<Rep, Period>;
  if constexpr (std::is_floating_point<Rep>::value) {
    // `d < zero()` is false for NaN too: require a count of at least zero.
    if (!(d.count() >= Rep{0}))
      return {true, std::nullopt};
  } else if (d < duration::zero()) {
    return {true, std::nullopt};
  }
  auto saturated = saturating_duration(d);
  if (saturated >= offload_timeout_forever)
    return {false, std::nullopt};
  return {false, std::chrono::duration_cast<caf::timespan>(saturated)};
}

} // namespace internal

/// The handle `offload` returns; see the header comment.
template <class Self, class T>
class offload_handle {
public:
  offload_handle(Self* self, caf::message_id request_id, internal::job_ptr job)
    : self_(self), request_id_(request_id), job_(std::move(job)) {
    // nop
  }

  /// Event-based actors: handle the outcome when it arrives, in any order
  /// with other messages (like `request(...).then`).
  template <class F, class OnError>
  void then(F on_value, OnError on_error) {
    response<false>().then(internal::unwrap_handler<T>(std::move(on_value)),
                           wrap(std::move(on_error)));
  }

  template <class F>
  void then(F on_value) {
    then(std::move(on_value), internal::default_error_handler(self_));
  }

  /// Event-based actors: suspend other messages until the outcome arrives
  /// (like `request(...).await`).
  template <class F, class OnError>
  void await(F on_value, OnError on_error) {
    response<false>().await(internal::unwrap_handler<T>(std::move(on_value)),
                            wrap(std::move(on_error)));
  }

  template <class F>
  void await(F on_value) {
    await(std::move(on_value), internal::default_error_handler(self_));
  }

  /// Blocking actors: wait for the outcome.
  template <class F, class OnError>
  void receive(F on_value, OnError on_error) {
    response<true>().receive(internal::unwrap_handler<T>(std::move(on_value)),
                             wrap(std::move(on_error)));
  }

  /// Cancels the job if it has not started; the error handler then gets
  /// `cancelled`. A running job that takes a `stop_token` is asked to stop
  /// (cause `cancelled`; see blocking_pool.hpp for the grace period). False
  /// if it already ended, or runs without a token.
  bool cancel() {
    if (job_->cancel_with(make_error(errc::cancelled,
                                     "offloaded job cancelled before it "
                                     "started")))
      return true;
    job_->wait_while_dropping();
    return job_->stop_running(errc::cancelled);
  }

  /// The request id, e.g. to correlate with logs.
  caf::message_id id() const noexcept {
    return request_id_;
  }

private:
  template <class OnError>
  static auto wrap(OnError on_error) {
    return internal::weave_error_handler(std::move(on_error));
  }

  /// CAF's own handle for the job's response.
  template <bool Blocking>
  caf::response_handle<Self, caf::message, Blocking> response() const {
    return {request_id_.response_id(), self_};
  }

  Self* self_;
  caf::message_id request_id_;
  internal::job_ptr job_;
};

namespace internal {

template <class Self, class F>
auto offload_impl(Self* self, blocking_pool* pool, F fn,
                  offload_timeout timeout) {
  using t = job_result_t<F>;
  auto rid = self->new_request_id(caf::message_priority::normal);
  auto j = caf::make_counted<actor_job_impl<t, F>>(self->ctrl(),
                                                   rid.response_id(),
                                                   std::move(fn));
  offload_handle<Self, t> handle{self, rid, j};
  if (timeout.refused) {
    j->cancel_with(make_error(errc::invalid_argument,
                              "offload: negative timeout (or not a number)"));
    return handle;
  }
  // Under a deadline scope, the time left to it bounds the timeout.
  if (auto scope = current_deadline(); scope != steady_clock::time_point::max()) {
    auto left = std::max(scope - steady_clock::now(),
                         steady_clock::duration::zero());
    auto left_ts = std::chrono::duration_cast<caf::timespan>(left);
    if (!timeout.value || left_ts < *timeout.value)
      timeout.value = left_ts;
  }
  if (timeout.value) {
    j->deadline = saturating_add(steady_clock::now(), *timeout.value);
    self->request_response_timeout(caf::duration{*timeout.value}, rid);
  }
  if (pool == nullptr) {
    auto& rt = runtime::from(self->system());
    if (rt.shutting_down()) {
      j->cancel_with(make_error(errc::shut_down, "the runtime is shut down"));
      return handle;
    }
    pool = &rt.default_pool();
  }
  // Keyed by the actor: its offloads start in order whichever scheduler
  // thread runs it.
  // A job that takes a token is watched at its deadline too: if it runs
  // then, its stop is requested.
  bool watched = takes_stop_token_v<F> && timeout.value.has_value();
  runtime_access::enqueue(*pool, std::move(j), self->id(), watched);
  return handle;
}

template <class T>
using not_a_pool = std::enable_if_t<
  !std::is_same<std::decay_t<T>, blocking_pool>::value>;

} // namespace internal

/// Runs `fn` on the runtime's default pool.
template <class Self, class F, class = internal::not_a_pool<F>>
auto offload(Self* self, F fn) {
  return internal::offload_impl(self, nullptr, std::move(fn),
                                internal::offload_timeout{});
}

/// Runs `fn` on the default pool; the outcome is `weave::errc::timeout` if it
/// takes longer than `timeout`.
template <class Self, class F, class Rep, class Period,
          class = internal::not_a_pool<F>>
auto offload(Self* self, F fn, std::chrono::duration<Rep, Period> timeout) {
  return internal::offload_impl(self, nullptr, std::move(fn),
                                internal::make_offload_timeout(timeout));
}

/// Runs `fn` on `pool`.
template <class Self, class F>
auto offload(Self* self, blocking_pool& pool, F fn) {
  return internal::offload_impl(self, &pool, std::move(fn),
                                internal::offload_timeout{});
}

/// Runs `fn` on `pool`, with a timeout (`weave::errc::timeout`).
template <class Self, class F, class Rep, class Period>
auto offload(Self* self, blocking_pool& pool, F fn,
             std::chrono::duration<Rep, Period> timeout) {
  return internal::offload_impl(self, &pool, std::move(fn),
                                internal::make_offload_timeout(timeout));
}

/// `scoped_actor` callers: `offload(self, fn).receive(...)`.
template <class... Ts>
auto offload(caf::scoped_actor& self, Ts&&... xs) {
  return offload(self.ptr(), std::forward<Ts>(xs)...);
}

} // namespace weave

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(weave::internal::job_done)
