#include "runtime/future.hpp"

#include <string>

#include "runtime/this_thread.hpp"

namespace weave::internal {

namespace {

std::atomic<int64_t> spin_ns{50'000};

/// Spins between two reads of the clock while waiting.
constexpr int spins_per_clock_read = 64;

} // namespace

void check_may_block(const char* operation) {
  if (this_thread_must_not_block()) {
    std::string msg = operation;
    msg += " called on thread '";
    msg += this_thread_name();
    msg += "', which must never block (a scheduler thread or an event loop); "
           "use then() or offload() instead";
    raise(make_error(errc::would_deadlock, std::move(msg)));
  }
}

caf::timespan spin_duration() noexcept {
  return caf::timespan{spin_ns.load(std::memory_order_relaxed)};
}

void set_spin_duration(caf::timespan value) noexcept {
  spin_ns.store(value.count(), std::memory_order_relaxed);
}

bool spin_until(const std::atomic<uint8_t>& phase, uint8_t target) noexcept {
  auto budget = spin_duration();
  if (budget.count() <= 0)
    return false;
  auto start = steady_clock::now();
  for (;;) {
    for (int i = 0; i < spins_per_clock_read; ++i) {
      if (phase.load(std::memory_order_acquire) == target)
        return true;
      cpu_relax();
    }
    if (steady_clock::now() - start > budget)
      return phase.load(std::memory_order_acquire) == target;
  }
}

} // namespace weave::internal
