#pragma once

/// What `runtime::shutdown` did, phase by phase.
///
/// Shutdown runs in phases (stop accepting work; stop loops; close channels;
/// let pools finish running jobs until the deadline while queued jobs are
/// answered with `shut_down`; wait for blockers and user actors; join every
/// thread, or leave the actor system alive if a thread is stuck).
/// The report counts every job and thread that shutdown had to touch, so
/// nothing is forgotten silently: a job still running at the deadline is
/// abandoned: its caller is told `shut_down` at once, its thread is left to
/// finish on its own and counted here, and its late result is dropped and
/// counted (`thread_census::late_results_dropped()`).
///
/// Thread-safety: a plain value.

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "caf/timespan.hpp"

namespace weave {

struct shutdown_report {
  /// Jobs that had finished (ok or failed) before or during shutdown.
  size_t jobs_completed = 0;
  /// Queued jobs answered with `shut_down` instead of running.
  size_t jobs_cancelled = 0;
  /// Jobs (pool jobs and blockers) still running at the deadline, whose
  /// callers were told `shut_down`; includes jobs that a pool shut down
  /// earlier left running. Each counted once.
  size_t jobs_abandoned = 0;
  /// Loop futures completed with `shut_down`.
  size_t futures_failed = 0;
  /// Channels closed by shutdown.
  size_t channels_closed = 0;
  /// weave threads that ended (pool workers, loops, blockers, the timer).
  size_t threads_joined = 0;
  /// Threads still running when shutdown returned, each counted once:
  /// weave's (pool workers, loops, blockers, its timer; its shutdown thread
  /// if that was held up past the deadline) and those of user actors with a
  /// thread of their own (detached or blocking actors).
  size_t threads_abandoned = 0;
  /// User actors still alive at the deadline (dropped with the scheduler).
  /// A user actor with a thread of its own that is still running is an
  /// actor here and a thread in `threads_abandoned`.
  size_t actors_abandoned = 0;
  /// Pool workers quarantined when shutdown began: each ran a job that
  /// ignored its stop request past the grace period (its caller was
  /// answered then). Still running at the deadline, such a worker is also
  /// in `threads_abandoned`.
  size_t workers_quarantined = 0;
  /// Time taken by each phase, in order.
  std::vector<std::pair<std::string, caf::timespan>> phases;
  /// Time taken by the whole shutdown.
  caf::timespan total{0};

  /// True if shutdown did not have to cancel, fail or abandon anything.
  bool empty() const noexcept {
    return jobs_cancelled == 0 && jobs_abandoned == 0 && futures_failed == 0
           && threads_abandoned == 0 && actors_abandoned == 0;
  }

  /// One line, e.g. "weave shutdown: 3 jobs cancelled, ... in 12ms
  /// (loops 0ms, pools 11ms, ...)".
  std::string to_string() const;
};

} // namespace weave
