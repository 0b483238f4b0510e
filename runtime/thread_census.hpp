#pragma once

/// A count of the threads weave has started and that have ended.
///
/// Every thread a `weave::runtime` starts (CAF's scheduler and clock threads,
/// every detached actor: pool workers, loops on their own thread, blockers,
/// the timer of timed submits; the blocking detector's watchdog and the
/// thread that runs a shutdown's phases) is counted when it starts and when
/// it ends. After a runtime is destroyed,
/// `running()` is back to what it was before it was created, unless shutdown
/// had to abandon a thread stuck in user code (see `shutdown_report`).
///
/// Thread-safety: the counters are atomics; reads are a snapshot.

#include <cstddef>

namespace weave::thread_census {

/// Threads started by any weave runtime in this process, ever.
size_t started() noexcept;

/// Threads that have ended, ever.
size_t ended() noexcept;

/// Threads started and not yet ended.
size_t running() noexcept;

/// Results of abandoned jobs (still running at a shutdown deadline) that
/// arrived after their caller had been told `shut_down`, and were dropped.
size_t late_results_dropped() noexcept;

} // namespace weave::thread_census
