#pragma once

// Internal: calling a job's function with or without a `stop_token`.
//
// A function that takes a `weave::stop_token` gets one from a
// `stop_source` of its job (one allocation more per such job, none for a
// function without a token). Once a stop was requested while it ran
// (`cancel()`, its deadline, a shutdown), the job's outcome is the stop's
// cause (`cancelled`, `timeout`, `shut_down`) whatever the function
// returned or threw: its caller asked for the work to stop and is told so,
// never handed a result the function may have cut short.

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

/// The stop state of a job whose function takes no token: nothing.
template <bool TakesToken>
class job_stop {
public:
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
  template <class F>
  decltype(auto) call(F& fn) {
    return fn(source_.get_token());
  }

  bool request(errc cause) noexcept {
    try {
      source_.request_stop(cause); // the first cause wins
    } catch (...) {
      // Only an invalid cause throws; weave passes none.
    }
    return true;
  }

  errc cause() const noexcept {
    return source_.cause();
  }

private:
  stop_source source_;
};

/// The error a stopped job ends with.
inline caf::error stopped_job_error(errc cause) {
  return make_error(cause, "the job was asked to stop while it ran");
}

} // namespace weave::internal
