#include "runtime/internal/metrics_clock.hpp"

#include <mutex>

#if defined(__x86_64__)
#  include <cpuid.h>
#endif

namespace weave::internal::metrics_clock {

std::atomic<bool> tsc_in_use{false};
std::atomic<uint64_t> ns_per_tick_q32{0};

namespace {

/// How long calibration compares the counter with steady_clock: long enough
/// that the error of its two paired readings (tens of ns) stays below 1e-4.
constexpr uint64_t calibration_ns = 2'000'000;

/// A paired reading is kept only if the two steady_clock reads around the
/// counter read are at most this far apart (else it was preempted).
constexpr uint64_t max_pair_spread_ns = 2'000;

/// How many times a paired reading is tried before the last one is kept.
constexpr int pair_attempts = 20;

#if defined(__x86_64__)
bool invariant_tsc() noexcept {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0x80000000u, &a, &b, &c, &d) == 0 || a < 0x80000007u)
    return false;
  __get_cpuid(0x80000007u, &a, &b, &c, &d);
  constexpr unsigned invariant_tsc_bit = 1u << 8;
  return (d & invariant_tsc_bit) != 0;
}

/// A counter reading and the steady time it was taken at.
void paired_reading(uint64_t& tsc, uint64_t& ns) noexcept {
  for (int k = 0; k < pair_attempts; ++k) {
    auto before = steady_ns();
    auto t = __rdtsc();
    auto after = steady_ns();
    tsc = t;
    ns = before + (after - before) / 2;
    if (after - before <= max_pair_spread_ns)
      return;
  }
}
#endif

void do_calibrate() noexcept {
#if defined(__x86_64__)
  if (invariant_tsc()) {
    uint64_t t0 = 0, n0 = 0, t1 = 0, n1 = 0;
    paired_reading(t0, n0);
    while (steady_ns() - n0 < calibration_ns) {
      // spin: calibration needs the time to pass, not the CPU to rest
    }
    paired_reading(t1, n1);
    if (t1 > t0 && n1 > n0) {
      ns_per_tick_q32.store(((n1 - n0) << 32) / (t1 - t0),
                            std::memory_order_relaxed);
      tsc_in_use.store(true, std::memory_order_relaxed);
      return;
    }
  }
#endif
  ns_per_tick_q32.store(uint64_t{1} << 32, std::memory_order_relaxed);
  tsc_in_use.store(false, std::memory_order_relaxed);
}

} // namespace

void calibrate() noexcept {
  static std::once_flag once;
  std::call_once(once, do_calibrate);
}

} // namespace weave::internal::metrics_clock
