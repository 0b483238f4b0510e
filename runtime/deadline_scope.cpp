#include "runtime/deadline_scope.hpp"

namespace weave {

namespace {

/// The calling thread's deadline (see deadline_scope.hpp).
thread_local std::chrono::steady_clock::time_point tl_deadline
  = std::chrono::steady_clock::time_point::max();

} // namespace

std::chrono::steady_clock::time_point current_deadline() noexcept {
  return tl_deadline;
}

namespace internal {

std::chrono::steady_clock::time_point
exchange_current_deadline(std::chrono::steady_clock::time_point at) noexcept {
  auto old = tl_deadline;
  tl_deadline = at;
  return old;
}

} // namespace internal

} // namespace weave
