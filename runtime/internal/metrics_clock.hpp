#pragma once

// Internal: the clock behind weave's always-on metrics (pool queue waits
// and run times, loop lag; scheduler busy time uses the blocking detector's
// steady-clock stamps instead).
//
// `now()` reads the CPU's time-stamp counter where it is invariant (x86-64
// with the invariant-TSC bit), about 12 ns where a steady_clock read costs
// about 28 ns (measured on the development VM, whose clock is kvm-clock):
// a pool job takes three readings, so this is most of the metrics' cost.
// Elsewhere `now()` is steady_clock in nanoseconds. Readings are only ever
// subtracted from one another and converted with `to_ns()`, whose scale is
// calibrated once per process against steady_clock (`calibrate()`, about
// 2 ms, called by the first runtime that starts).
//
// Thread-safety: `calibrate()` may race with itself (std::call_once); the
// scale it sets is read with relaxed atomics by every thread started after it
// (the runtime calibrates before it starts any thread). Before calibration,
// `to_ns()` is 0.

#include <atomic>
#include <chrono>
#include <cstdint>

#if defined(__x86_64__)
#  include <x86intrin.h>
#endif

namespace weave::internal::metrics_clock {

/// True once calibrated to the time-stamp counter (else steady_clock).
extern std::atomic<bool> tsc_in_use;

/// Nanoseconds per tick, times 2^32.
extern std::atomic<uint64_t> ns_per_tick_q32;

/// The steady clock in nanoseconds.
inline uint64_t steady_ns() noexcept {
  return static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch())
      .count());
}

/// A reading of the metrics clock, in ticks (see `to_ns`).
inline uint64_t now() noexcept {
#if defined(__x86_64__)
  if (tsc_in_use.load(std::memory_order_relaxed))
    return __rdtsc();
#endif
  return steady_ns();
}

/// Converts a difference of two readings to nanoseconds.
inline uint64_t to_ns(uint64_t ticks) noexcept {
  return static_cast<uint64_t>(
    (static_cast<unsigned __int128>(ticks)
     * ns_per_tick_q32.load(std::memory_order_relaxed))
    >> 32);
}

/// Nanoseconds from reading `from` to reading `to` (0 if `to` is earlier).
inline uint64_t elapsed_ns(uint64_t from, uint64_t to) noexcept {
  return to > from ? to_ns(to - from) : 0;
}

/// Chooses the clock and calibrates it; once per process, idempotent.
void calibrate() noexcept;

} // namespace weave::internal::metrics_clock
