#pragma once

// Internal: the shared part of a blocking_pool.
//
// Owned jointly by the `blocking_pool` object, by every worker (so a pool
// destroyed while a worker is stuck in a job stays valid for that worker),
// and by anything that must outlive the pool object (a file actor's view of
// it, see runtime_access). The runtime holds a weak reference and stops it
// at shutdown; a pool already shut down by its owner is visited again, so
// that a job it left running is still counted in the runtime's report.
//
// Stopping running jobs (pool_ladder.cpp): a job that takes a stop token
// and is asked to stop while it runs (cancel, deadline, shutdown) gets its
// stop requested at once and a grace period on the runtime's timer. If it
// still runs at the end of it, the grace entry takes it out of its
// worker's slot (so the worker will not deliver it), answers the caller
// with the stop's cause, and quarantines the worker: it no longer counts
// as one of the pool's workers, so a fresh one may start (in a free slot:
// there are `max_workers + max_quarantined` slots) while at most
// `max_quarantined` are quarantined; when the stuck job returns, the
// quarantined worker drops its result, frees its slot and ends.
//
// Locking: `live_mtx_` guards the live-worker count and `finished_`, and
// serializes spawning workers (a spawn runs no user code), and guards the
// slots' bookkeeping (which are free, which quarantined); `wait_mtx_`
// guards the self-wait table; `live_mtx_` may be held while the queue's own
// lock is taken, never the other way round. No user code runs under any of
// them: jobs answered or abandoned by a shutdown or a failed spawn are taken
// out of their slots or the queue and answered (their continuations run)
// after unlocking.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "caf/fwd.hpp"

#include "runtime/blocking_pool.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/internal/deadline_timer.hpp"
#include "runtime/internal/job_queue.hpp"
#include "runtime/internal/pool_metrics.hpp"

namespace weave::internal {

class pool_impl;

/// A timer entry that, at `target`'s deadline, answers it `timeout` if it is
/// still queued, or asks it to stop if it runs (pool_ladder.cpp).
job_ptr make_deadline_watch(std::weak_ptr<pool_impl> pool, job_ptr target);

class pool_impl : public component,
                  public self_wait_guard,
                  public job_owner,
                  public std::enable_shared_from_this<pool_impl> {
public:
  pool_impl(caf::actor_system& sys, std::shared_ptr<deadline_timer> timer,
            size_t max_workers, std::string name,
            caf::timespan cancel_grace = caf::timespan{0},
            size_t max_quarantined = 0);

  shutdown_phase phase() const noexcept override {
    return shutdown_phase::pools;
  }

  void begin_shutdown(shutdown_report& report) override;

  void finish_shutdown(steady_clock::time_point deadline,
                       shutdown_report& report) override;

  /// True once a shutdown has passed its deadline (no worker starts after).
  bool finished() const;

  /// Queues `j`; answers it with `shut_down` at once if the pool is shut
  /// down. With `timed`, `j->deadline` (unless "never") is armed on the
  /// runtime's timer, which answers `timeout` if no worker started it.
  /// `key`: the submitter (an actor's id) whose jobs start in order; by
  /// default the calling thread (see job_queue::push).
  void enqueue(job_ptr j, bool timed = false,
               uint64_t key = job_queue::no_key);

  blocking_pool::stats_type stats() const;

  void collect_metrics(metrics_snapshot& out) const override;

  bool begin_wait(const job& awaited) override;

  void end_wait() noexcept override;

  /// Requests the stop of `j`, running on a worker, and arms its grace
  /// period (see the top of this file).
  bool stop_running(job& j, errc cause) noexcept override;

  /// The end of `j`'s grace period: if it still runs, answers its caller
  /// with `cause` and quarantines its worker.
  void grace_expired(job& j, errc cause) noexcept;

  /// The deadline of a job that takes a stop token: answered `timeout` if
  /// still queued, asked to stop if running.
  void deadline_reached(job& j) noexcept;

  const std::string& name() const noexcept {
    return name_;
  }

  size_t max_workers() const noexcept {
    return max_workers_;
  }

private:
  enum class spawn_outcome { none, spawned, failed };

  /// Starts one more worker unless `max_workers_` exist or the pool has
  /// finished. If the spawn throws, nothing is left counted for the worker
  /// that never started, and when no worker is alive to run them, the
  /// queued jobs are answered with the failure (`job_failed`).
  spawn_outcome maybe_spawn_worker();

  void worker_main(size_t index);

  /// Called by a worker whose job was taken out of its slot: true if the
  /// worker is quarantined (it frees its slot and must end).
  bool leave_if_quarantined(size_t index);

  /// Arms `watch` (a timer entry of pool_ladder.cpp) at `at`.
  void arm_watch(job_ptr watch, steady_clock::time_point at);

  /// Requests the stop of every running job that takes a stop token.
  void request_stop_of_running(errc cause) noexcept;

  /// Takes every running job whose stop was requested out of its slot and
  /// answers it `shut_down` (abandoned: its worker drops the late result);
  /// returns how many.
  size_t abandon_stopped_jobs();

  /// Empties worker `index`'s slot after a job that did not run.
  void release_slot(size_t index) noexcept;

  caf::actor_system& sys_;
  const std::shared_ptr<deadline_timer> timer_;
  const size_t max_workers_;
  const std::string name_;
  const caf::timespan cancel_grace_;
  const size_t max_quarantined_;
  // Slots: one per worker, plus one per worker that may be quarantined.
  const size_t capacity_;
  // Workers spin before parking only while a core is free for it.
  const size_t cores_;
  job_queue queue_;
  // Workers alive and not quarantined (written under `live_mtx_`, only
  // after a spawn succeeded).
  std::atomic<size_t> spawned_{0};
  // Slots ever used: every slot below this has had a worker (under
  // `live_mtx_`; read without it only by shutdown, after the last spawn).
  std::atomic<size_t> slots_used_{0};
  // Slots freed by quarantined workers that ended (under `live_mtx_`).
  std::vector<size_t> free_slots_;
  // Per slot: its worker is quarantined (under `live_mtx_`).
  std::vector<char> quarantined_;
  size_t quarantined_live_ = 0;
  std::atomic<size_t> quarantined_now_{0};
  std::atomic<size_t> quarantined_total_{0};
  // Worker threads started, for the shutdown report.
  size_t started_ = 0;
  // When a shutdown asked the running jobs to stop (under `live_mtx_`).
  steady_clock::time_point stops_sent_ = steady_clock::time_point::max();
  // Per slot, the running job if it takes a stop token (no reference of
  // its own: the worker holds one), so that a shutdown can ask it to stop.
  // A reader announces itself in the slot's `stop_visitors_` before it
  // loads the pointer and takes a reference; a worker that clears its slot
  // waits until no reader is inside (a reader only copies a reference).
  // Both sides are seq_cst: either the reader sees null, or the worker sees
  // the reader. This costs a token job four atomic operations, where a pool
  // lock taken twice per job cost about 0.1 µs of its round trip.
  std::unique_ptr<std::atomic<job*>[]> stoppable_;
  std::unique_ptr<std::atomic<uint32_t>[]> stop_visitors_;
  // The cause a shutdown asked every running job to stop with: a job a
  // worker claims later is asked at once (set once, from `errc{}`).
  std::atomic<uint8_t> stop_all_cause_{0};

  /// References to the token jobs running now (see `stoppable_`).
  std::vector<job_ptr> stoppable_jobs();
  // Queue-wait and run-time histograms, one per slot (metrics.hpp).
  pool_recorder metrics_{capacity_};
  std::atomic<size_t> busy_{0};
  std::atomic<size_t> completed_{0};
  std::atomic<size_t> failed_{0};
  std::atomic<size_t> stopped_{0};
  // The job each worker holds, from the moment the queue hands it over (see
  // job_queue::pop) until it ended, so that shutdown can answer or abandon
  // it at the deadline: whoever takes it out of the slot (the worker when
  // it is done with it, or shutdown) decides how it ends.
  std::unique_ptr<std::atomic<job*>[]> running_;
  // Jobs taken out of their slots by a shutdown whose workers have not
  // returned yet (briefly negative while a worker races the count).
  std::atomic<long> abandoned_live_{0};
  // Self-wait table: for each worker, the job of this pool it waits for
  // (null: none). A pointer stays valid while it is in the table: its
  // waiter holds the job and removes it before it stops waiting.
  mutable std::mutex wait_mtx_;
  std::vector<const job*> awaited_;
  // Live workers; shutdown waits for this to reach zero.
  mutable std::mutex live_mtx_;
  std::condition_variable live_cv_;
  size_t live_ = 0;
  bool finished_ = false;
};

} // namespace weave::internal
