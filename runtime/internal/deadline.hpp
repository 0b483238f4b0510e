#pragma once

// Internal: deadline arithmetic that saturates instead of overflowing.
//
// A user may pass any duration: `hours::max()`, `seconds::max()`, a double
// of 1e300 seconds. Converting those to the steady clock's nanoseconds, or
// adding them to `now()`, overflows (undefined behaviour for signed
// integers). These helpers clamp to `steady_clock::duration::max()` and
// `steady_clock::time_point::max()` ("never") instead. Negative durations
// are the caller's to refuse (`invalid_argument`) before calling these.

#include <chrono>
#include <type_traits>

namespace weave::internal {

using steady_clock = std::chrono::steady_clock;

/// `d` as a steady-clock duration, clamped to [min(), max()].
template <class Rep, class Period>
steady_clock::duration
saturating_duration(std::chrono::duration<Rep, Period> d) noexcept {
  using source = std::chrono::duration<Rep, Period>;
  using target = steady_clock::duration;
  if constexpr (std::is_floating_point<Rep>::value) {
    using fsec = std::chrono::duration<long double, typename target::period>;
    auto x = std::chrono::duration_cast<fsec>(d).count();
    if (!(x < static_cast<long double>(target::max().count())))
      return x != x ? target::zero() : target::max(); // NaN: zero
    if (!(x > static_cast<long double>(target::min().count())))
      return target::min();
    return target{static_cast<typename target::rep>(x)};
  } else {
    // The largest and smallest source values that still fit (rounded
    // towards zero, so converting them back cannot overflow).
    constexpr auto hi = std::chrono::duration_cast<source>(target::max());
    if (d >= hi)
      return target::max();
    if constexpr (std::is_signed<Rep>::value) {
      constexpr auto lo = std::chrono::duration_cast<source>(target::min());
      if (d <= lo)
        return target::min();
    }
    return std::chrono::duration_cast<target>(d);
  }
}

/// `from + d`, clamped to `time_point::max()`; `d` must not be negative.
inline steady_clock::time_point
saturating_add(steady_clock::time_point from,
               steady_clock::duration d) noexcept {
  if (d > steady_clock::time_point::max() - from)
    return steady_clock::time_point::max();
  return from + d;
}

/// The deadline `d` from now, clamped to "never" (`time_point::max()`).
template <class Rep, class Period>
steady_clock::time_point
deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  return saturating_add(steady_clock::now(), saturating_duration(d));
}

} // namespace weave::internal
