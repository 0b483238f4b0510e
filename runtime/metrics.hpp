#pragma once

/// `metrics_snapshot`: what a running weave program is doing, in numbers —
/// the answer to "which pool is saturated, how deep is each channel, which
/// loop lags, which scheduler thread is busy".
///
/// `runtime::metrics()` returns one: plain values (copyable, comparable by
/// hand, safe to keep after the runtime is gone), taken without stopping
/// the world. `to_prometheus(snapshot)` (prometheus.hpp) renders it in
/// Prometheus' text exposition format.
///
/// What it holds
/// - per blocking pool: workers, busy, queued, the jobs' outcomes
///   (completed, failed, stopped, cancelled), quarantined workers, and two
///   histograms: how long jobs waited in the queue, how long they ran;
/// - per scheduler worker (CAF's scheduler threads): resumes (turns of an
///   actor), busy time, parks (the worker went to sleep), steals, slow
///   handlers (the blocking detector's reports about that worker);
/// - per channel made with a runtime: depth, capacity, high-water mark,
///   blocked producers and consumers, puts, gets, drops, refusals;
/// - per loop: tasks run, and their lag (time from being sent to the loop
///   to starting to run) as a histogram;
/// - threads by role, and the process-wide thread census.
///
/// Cost: metrics are always on. Per operation they cost a few relaxed
/// stores on cache lines that only one thread writes (one histogram per
/// pool worker, per loop, per scheduler worker, summed when a snapshot is
/// taken) and a reading of a cheap clock (the CPU's time-stamp counter
/// where it is invariant) at each of a job's enqueue, start and end. No
/// lock and no shared counter is added to any per-item path. Counters that
/// weave already kept (pool and channel statistics, slow handlers, the
/// thread census) are reused, not duplicated.
///
/// Consistency: each number is exact once the work it counts has settled
/// (a job's counters and histograms are updated before its caller hears
/// its outcome). While work is in flight, a snapshot may see a job counted
/// in one place and not yet in another (say, in `completed` but not yet out
/// of `busy`): each counter is read atomically, not all of them at once.
/// A channel's numbers are read under its own locks, so they agree with
/// one another.
///
/// Durations are nanoseconds (`*_ns`); histograms have fixed log-scale
/// buckets (`duration_histogram`), the same for every histogram and every
/// machine, so snapshots can be added and compared.
///
/// Thread-safety: a snapshot is a value; `runtime::metrics()` may be
/// called from any thread, concurrently with any work, also during and
/// after shutdown (pools, channels and loops that are still alive are
/// reported; the scheduler's counters stay readable).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace weave {

/// A histogram of durations with fixed log-scale buckets: bucket `i` (for
/// `i < finite_buckets`) counts durations in (bound(i-1), bound(i)], with
/// bound(i) = 100 ns × 2^i (100 ns, 200 ns, 400 ns, ... about 107 s); the
/// last bucket counts everything longer.
struct duration_histogram {
  /// Buckets with a finite upper bound.
  static constexpr size_t finite_buckets = 31;
  /// All buckets: the finite ones and the overflow (+Inf) bucket.
  static constexpr size_t bucket_count = finite_buckets + 1;
  /// The upper bound of the first bucket.
  static constexpr uint64_t first_bound_ns = 100;

  /// Counts per bucket (not cumulative).
  std::array<uint64_t, bucket_count> buckets{};
  /// The sum of all recorded durations.
  uint64_t sum_ns = 0;

  /// The upper bound of bucket `i` (`i < finite_buckets`), in nanoseconds.
  static constexpr uint64_t upper_bound_ns(size_t i) noexcept {
    return first_bound_ns << i;
  }

  /// The bucket a duration of `ns` nanoseconds falls into.
  static constexpr size_t bucket_of(uint64_t ns) noexcept {
    if (ns <= first_bound_ns)
      return 0;
    auto q = (ns - 1) / first_bound_ns; // at least 1
    auto width = static_cast<size_t>(64 - __builtin_clzll(q));
    return width < finite_buckets ? width : finite_buckets;
  }

  /// Durations recorded (the sum of all buckets).
  uint64_t count() const noexcept;

  /// An upper bound of the `q`-quantile (0 < q <= 1): the upper bound of
  /// the bucket that holds it, in nanoseconds; 0 if empty, UINT64_MAX if it
  /// is in the overflow bucket.
  uint64_t quantile_bound_ns(double q) const noexcept;

  /// Adds `other`'s counts and sum to this one.
  duration_histogram& operator+=(const duration_histogram& other) noexcept;
};

/// One blocking pool (see blocking_pool.hpp for the meaning of each count).
struct pool_metrics {
  std::string name;
  size_t max_workers = 0;
  /// Workers started and not quarantined.
  size_t workers = 0;
  /// Workers running a job now.
  size_t busy = 0;
  /// Jobs waiting for a worker now.
  size_t queued = 0;
  /// Jobs that ran and returned a value.
  uint64_t completed = 0;
  /// Jobs that ran and threw (and were not asked to stop).
  uint64_t failed = 0;
  /// Jobs that ran and were asked to stop meanwhile.
  uint64_t stopped = 0;
  /// Jobs that never ran: cancelled, timed out, or answered `shut_down`.
  uint64_t cancelled = 0;
  /// Workers quarantined now, and since the pool started.
  size_t quarantined = 0;
  uint64_t quarantined_total = 0;
  /// Worker threads alive now (quarantined ones included).
  size_t threads = 0;
  /// From enqueue to start, for every job that started.
  duration_histogram queue_wait;
  /// From start to end, for every job that ran to its end (a job still
  /// running is not in it yet).
  duration_histogram run_time;
  /// How long the pool has existed.
  uint64_t age_ns = 0;
  /// The share of its capacity the pool used since it started:
  /// `run_time.sum_ns / (age_ns × max_workers)`, between 0 and 1 (see
  /// `busy_ratio()` for the share between two snapshots).
  double busy_ratio = 0;
};

/// The share of `later`'s capacity that its jobs used since `earlier` (a
/// snapshot of the same pool), between 0 and 1; 0 if no time passed.
double busy_ratio(const pool_metrics& later,
                  const pool_metrics& earlier) noexcept;

/// One of CAF's scheduler threads (`weave-sched-<index>`).
struct scheduler_worker_metrics {
  size_t index = 0;
  /// Turns the worker gave to an actor (each handles up to
  /// `scheduler.max-throughput` messages).
  uint64_t resumes = 0;
  /// Time spent inside those turns.
  uint64_t busy_ns = 0;
  /// Times the worker ran out of work and went to sleep.
  uint64_t parks = 0;
  /// Times it took work queued on another worker.
  uint64_t steals = 0;
  /// Turns the blocking detector reported as too long on this worker.
  uint64_t slow_handlers = 0;
};

/// weave's TCP I/O thread (`weave-tcp`), which runs the turns of the actors
/// its sockets' readiness wakes (actors/tcp.hpp, "Where actors run").
struct tcp_io_metrics {
  /// Turns it gave to an actor.
  uint64_t turns = 0;
  /// Time spent inside those turns.
  uint64_t busy_ns = 0;
  /// Turns the blocking detector reported as too long on it.
  uint64_t slow_handlers = 0;
  /// Of `turns`, those a socket's readiness started without a message
  /// (its actor was idle: the I/O thread ran the turn at once).
  uint64_t direct_turns = 0;
  /// Readiness it kept for a turn that stopped at its share of a socket
  /// still ready (a stream's chunk), instead of re-arming the socket: the
  /// turn comes again after the other ready sockets.
  uint64_t kept_readiness = 0;
};

/// One channel made with a runtime (see channel_stats.hpp for the counts).
struct channel_metrics {
  /// The name given at creation, or `channel-<id>`.
  std::string name;
  uint64_t id = 0;
  size_t capacity = 0;
  size_t depth = 0;
  size_t high_water = 0;
  size_t blocked_producers = 0;
  size_t blocked_consumers = 0;
  size_t subscribers = 0;
  uint64_t puts = 0;
  uint64_t gets = 0;
  /// Items discarded by `drop_newest` / `drop_oldest`.
  uint64_t drops = 0;
  /// Puts refused with `full` by the `fail` policy.
  uint64_t refused = 0;
  bool closed = false;
};

/// One loop.
struct loop_metrics {
  std::string name;
  bool own_thread = false;
  /// From being sent to the loop to starting to run, for every task the
  /// loop ran (submitted and posted functions, and weave's own: a sleep's
  /// wake-up, a continuation); its count is the tasks run.
  duration_histogram lag;
  uint64_t submitted = 0;
  uint64_t posted = 0;
  /// Posted functions that threw.
  uint64_t post_failures = 0;
  bool ended = false;
};

/// Threads by role: this runtime's, then the process-wide census (every
/// weave runtime's, see thread_census.hpp).
struct thread_metrics {
  /// CAF's scheduler threads.
  size_t scheduler = 0;
  /// Pool worker threads alive (quarantined ones included).
  size_t pool_workers = 0;
  /// Loops running on a thread of their own.
  size_t loops = 0;
  /// `spawn_blocker` threads running.
  size_t blockers = 0;
  /// Process-wide: weave threads running, started and ended ever.
  size_t running = 0;
  uint64_t started = 0;
  uint64_t ended = 0;
  /// Process-wide: results of abandoned jobs that arrived late, dropped.
  uint64_t late_results_dropped = 0;
};

/// Everything `runtime::metrics()` reports.
struct metrics_snapshot {
  std::vector<pool_metrics> pools;
  std::vector<scheduler_worker_metrics> scheduler;
  std::vector<channel_metrics> channels;
  std::vector<loop_metrics> loops;
  thread_metrics threads;
  /// The TCP I/O thread's turns (zero until a TCP actor is used).
  tcp_io_metrics tcp_io;
  /// The blocking detector's reports (`runtime::slow_handlers()`): the
  /// scheduler workers' `slow_handlers` plus `tcp_io.slow_handlers`.
  uint64_t slow_handlers = 0;
};

} // namespace weave
