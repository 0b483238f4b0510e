#pragma once

// Internal: how long threads waited for a core, from Linux's per-thread
// schedstat, for the blocking detector. Preemption is not blocking: a
// scheduler worker the kernel took off its core (more runnable threads than
// cores) holds its resume for wall time it did not use.
//
// The kernel adds a wait to `/proc/self/task/TID/schedstat` (second field)
// only when the thread gets a core again, so a wait still in progress is
// estimated from the samples: a thread that is runnable (`R` in
// `/proc/self/task/TID/stat`) and whose run time and wait have not changed
// since a sample has waited at least since that sample. A span's wait is
// thus counted from below, never above what the thread waited, except for
// the wait between the sample before the span was first seen and the span's
// start (see `begin_span`).
//
// Use: the watchdog calls `sample` for each thread on every look, and
// `begin_span` when it first sees a resume. Where the kernel has no
// schedstat (no CONFIG_SCHED_INFO) every wait reads 0. Not thread-safe: one
// thread (the watchdog) owns it; no locks.

#include <cstddef>
#include <cstdint>
#include <memory>

namespace weave::internal {

class run_queue_meter {
public:
  explicit run_queue_meter(size_t threads);
  ~run_queue_meter();

  run_queue_meter(const run_queue_meter&) = delete;
  run_queue_meter& operator=(const run_queue_meter&) = delete;

  /// Reads thread `i`, kernel id `tid` (0: not known yet), at `now_ns`.
  void sample(size_t i, int32_t tid, int64_t now_ns);

  /// Starts a span on thread `i`: its wait counts from the sample before
  /// the latest (which the span began after).
  void begin_span(size_t i);

  /// How long thread `i` has waited for a core since its span began, as of
  /// its latest sample taken at `now_ns`.
  int64_t waited_ns(size_t i, int64_t now_ns);

private:
  struct thread_stat {
    int32_t tid = 0;
    int schedstat_fd = -1;
    int stat_fd = -1;
    bool sampled = false;
    uint64_t run_ns = 0;
    uint64_t delay_ns = 0;
    uint64_t previous_delay_ns = 0;
    int64_t quiet_since_ns = 0;
    uint64_t span_base_ns = 0;
  };

  void open_files(thread_stat& t, int32_t tid);
  bool runnable(thread_stat& t);

  const size_t threads_;
  std::unique_ptr<thread_stat[]> stats_;
};

} // namespace weave::internal
