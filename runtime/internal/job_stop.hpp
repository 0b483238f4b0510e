#pragma once

// Internal: calling a job's function with or without a `stop_token`.
//
// A function that takes a `weave::stop_token` gets a token of a stop state
// embedded in its job (`job_stop<true>`): no allocation beyond the job's
// own, as for a function without a token. Once a stop was requested while
// it ran (`cancel()`, its deadline, a shutdown), the job's outcome is the
// stop's cause (`cancelled`, `timeout`, `shut_down`) whatever the function
// returned or threw: its caller asked for the work to stop and is told so,
// never handed a result the function may have cut short.
//
// How the embedded state lives: a token may outlive its job (a user copies
// it into another thread; it stays readable), so the state cannot simply
// die with the job. It counts references of its own: one held by the job,
// one per token and per registered `stop_callback`. When the job's own
// count reaches zero (`caf::ref_counted::request_deletion`, the hook CAF
// provides for weak references), the job releases what it holds for the
// user (its value, its continuations, the actor it answers; its function
// went when it returned) and then drops its reference to the state, which
// marks the state's source as gone (`stop_possible()` of a leftover token
// turns false then, as when the state was separate). The last reference to
// the state deletes the job's memory: on a token's thread, running no user
// code and taking no lock. A token therefore never keeps a job's value
// alive: a function that returns its own token makes no cycle. A stop is
// only requested through a reference to the job, so the state outlives
// every `request_stop` (whose callbacks may drop the last token).
//
// Measured (valgrind memcheck heap count, 5,000 - 1,000 round trips,
// allocations per operation, `offload_rtt` / `offload_rtt_token`): with a
// separate state 3.75 / 4.40 and 3.41 / 4.83; embedded 3.27 / 3.30 and
// 3.53 / 3.42 (runs vary by about 0.2 either way). A submit that takes a
// token allocates once on the caller's thread, as one without
// (tests/job_token_lifetime_test.cpp).

#include <atomic>
#include <cstddef>
#include <type_traits>

#include "runtime/error.hpp"
#include "runtime/stop_token.hpp"

namespace weave::internal {

/// True if `F` is called with a `stop_token`.
template <class F>
constexpr bool takes_stop_token_v = std::is_invocable<F&, stop_token>::value;

/// What `F` returns, called with a token if it takes one.
template <class F>
using job_result_t = typename std::conditional_t<
  takes_stop_token_v<F>, std::invoke_result<F&, stop_token>,
  std::invoke_result<F&>>::type;

/// Destroys the job that embeds a stop state (`delete` of its real type).
using destroy_job_fn = void (*)(const void* host) noexcept;

/// A stop state inside a job; see the header comment.
class embedded_stop_state final : public stop_state {
public:
  embedded_stop_state(destroy_job_fn destroy, const void* host) noexcept
    : destroy_(destroy), host_(host) {
    add_source();
  }

  void ref_state() const noexcept override {
    rc_.fetch_add(1, std::memory_order_relaxed);
  }

  void deref_state() const noexcept override {
    if (rc_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      destroy_(host_); // destroys this too
  }

  /// Drops the job's reference: its source is gone.
  void release_job_ref() noexcept {
    release_source();
    deref_state();
  }

private:
  /// One for the job, one per token and registered callback.
  mutable std::atomic<size_t> rc_{1};
  destroy_job_fn destroy_;
  const void* host_;
};

/// The stop state of a job whose function takes no token: nothing.
template <bool TakesToken>
class job_stop {
public:
  job_stop(destroy_job_fn, const void*) noexcept {
    // nop
  }

  template <class F>
  decltype(auto) call(F& fn) {
    return fn();
  }

  bool request(errc) noexcept {
    return false;
  }

  /// The stop's cause once requested, else `errc{}`.
  errc cause() const noexcept {
    return errc{};
  }
};

/// The stop state of a job whose function takes a `stop_token`.
template <>
class job_stop<true> {
public:
  /// `destroy(host)` deletes the job once neither it nor a token needs it.
  job_stop(destroy_job_fn destroy, const void* host) noexcept
    : state_(destroy, host) {
    // nop
  }

  template <class F>
  decltype(auto) call(F& fn) {
    return fn(make_stop_token(&state_));
  }

  bool request(errc cause) noexcept {
    state_.request_stop(cause); // the first cause wins
    return true;
  }

  errc cause() const noexcept {
    return state_.cause();
  }

  /// The job's own count reached zero (its user-owned contents are gone):
  /// drops its reference to the state; the last one deletes the job.
  void release_job() noexcept {
    state_.release_job_ref();
  }

private:
  embedded_stop_state state_;
};

/// The error a stopped job ends with.
inline caf::error stopped_job_error(errc cause) {
  return make_error(cause, "the job was asked to stop while it ran");
}

} // namespace weave::internal
