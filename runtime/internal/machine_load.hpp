#pragma once

// Internal: whether the machine has a core to spare for a spinning thread.
//
// weave spins briefly in three places before it sleeps (a pool worker
// waiting for a job, a thread waiting on a future, a scheduler worker
// searching for work): on idle cores that saves a futex wake-up per
// operation; on a machine where every core is taken (a loaded server) a
// spinner only steals time from the threads doing the work. So each spin
// first asks `spinning_pays()`: true while the kernel's count of runnable
// threads, system-wide, is at most the number of cores (nothing waits for
// a core). The count is the fourth field of /proc/loadavg, an instantaneous
// figure (not the load average); it is read at most once per
// `refresh_period` by whichever caller finds it stale, so a check costs one
// relaxed load almost always. Where /proc/loadavg cannot be read, spinning
// is allowed (as before this check existed).
//
// Thread-safety: any thread; lock-free.

#include <chrono>

namespace weave::internal {

/// How long a reading of the runnable count is trusted.
constexpr auto refresh_period = std::chrono::milliseconds{10};

/// True unless the machine has more runnable threads than cores.
bool spinning_pays() noexcept;

/// Parses /proc/loadavg's text: the runnable count (the number before the
/// '/'), or -1 if `text` does not have that form.
long runnable_from_loadavg(const char* text) noexcept;

} // namespace weave::internal
