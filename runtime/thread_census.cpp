#include "runtime/thread_census.hpp"

#include <atomic>

#include "runtime/internal/thread_roles.hpp"

namespace weave {

namespace {

std::atomic<size_t> started_count{0};
std::atomic<size_t> ended_count{0};
std::atomic<size_t> late_results{0};

} // namespace

namespace internal {

void census_thread_started() noexcept {
  started_count.fetch_add(1, std::memory_order_relaxed);
}

void census_thread_ended() noexcept {
  ended_count.fetch_add(1, std::memory_order_relaxed);
}

void census_late_result_dropped() noexcept {
  late_results.fetch_add(1, std::memory_order_relaxed);
}

} // namespace internal

namespace thread_census {

size_t started() noexcept {
  return started_count.load();
}

size_t ended() noexcept {
  return ended_count.load();
}

size_t running() noexcept {
  // Read `ended` first so that a thread ending in between cannot make the
  // difference negative.
  auto e = ended_count.load();
  auto s = started_count.load();
  return s - e;
}

size_t late_results_dropped() noexcept {
  return late_results.load();
}

} // namespace thread_census

} // namespace weave
