#pragma once

// Internal: the queue a blocking_pool's workers pull from.
//
// Sharded: up to `max_shards` FIFOs (intrusive lists: no allocation per
// job), each under its own mutex, so that threads submitting at the same
// time do not queue up on one lock. A submitting thread always pushes to the
// same shard (chosen once per thread), so each submitter's jobs start in the
// order it submitted them. An actor is one submitter whichever scheduler
// thread runs it: its offloads carry its id as the shard key. A worker looking for a job scans every shard,
// starting one past where its last job came from, so no submitter's shard
// waits behind another's while a worker is taking jobs.
//
// Idle workers wait in two tiers: at most one spins for a short budget (so
// a job pushed right after another finishes is picked up in well under a
// microsecond, without a futex wake-up) — and only while a core is free for
// it (the pool decides: fewer busy workers than cores), since on a full
// machine a spinner only steals time from the threads doing the work — the
// rest park on one condition variable. `push` wakes a parked worker only
// when nobody spins; a worker that takes a job wakes a parked worker if more
// jobs are waiting. So every queued job is claimed by an idle worker as soon
// as one exists (a slow job never holds back a queued one while another
// worker is idle), and an idle pool burns no CPU once the spin budget is
// spent.
//
// No lost wake-up: a pusher links its job, then counts it in `size_`, then
// reads `parked_`; a worker about to park counts itself in `parked_`, then
// reads `size_` (all sequentially consistent). One of the two sees the
// other; the pusher's notify takes the parking mutex, so it cannot fall
// between the worker's check and its wait.
//
// Locking: a shard's mutex guards its list; the parking mutex guards only
// the wait. No user code runs under either: jobs leave the queue as
// references handed to the caller (`pop`, `close`, `drain`), who runs,
// answers or releases them after unlocking.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "caf/timespan.hpp"

#include "runtime/internal/job.hpp"

namespace weave::internal {

class job_queue {
public:
  /// The most shards a queue has (more stop paying off before 16 cores).
  static constexpr size_t max_shards = 16;

  /// A queue for a pool of at most `workers` workers: one shard per worker,
  /// up to `cores` (the machine's, unless a test says otherwise) and
  /// `max_shards`.
  explicit job_queue(size_t workers, size_t cores = machine_cores());

  /// The number of hardware threads (at least 1).
  static size_t machine_cores() noexcept;
  /// Releases jobs still queued (a queue is normally closed first).
  ~job_queue();
  job_queue(const job_queue&) = delete;
  job_queue& operator=(const job_queue&) = delete;

  /// No shard key: the calling thread is the submitter.
  static constexpr uint64_t no_key = ~uint64_t{0};

  /// Appends `j` to the shard of `key` (an actor's id), or of the calling
  /// thread if there is no key: jobs with one key, or from one thread
  /// without a key, start in the order they were pushed. Returns false (and
  /// leaves `j` alone) once closed. Sets `want_worker` if more jobs are
  /// queued than workers are idle.
  bool push(job_ptr j, bool& want_worker, uint64_t key = no_key);

  /// Takes a job (the oldest of a shard), waiting while the queue is empty.
  /// Returns null once the queue is closed (queued jobs are handed to
  /// `close()`'s caller). `may_spin`: the caller may spin first (a spinning
  /// thread only pays off when a core is free for it). The job is stored in
  /// `slot` (which must be empty), with a reference of the slot's own,
  /// before its shard's lock is released: a job is at every moment either
  /// queued (and `close()` hands it over) or in a slot, never in neither, so
  /// a shutdown that closes the queue and then empties the slots misses none.
  job_ptr pop(bool may_spin, std::atomic<job*>& slot);

  /// Refuses further pushes, wakes every waiting worker and returns the jobs
  /// that were still queued, each submitter's oldest first.
  std::vector<job_ptr> close();

  /// Returns the jobs queued now, each submitter's oldest first, and leaves
  /// the queue open.
  std::vector<job_ptr> drain();

  size_t size() const noexcept {
    return size_.load(std::memory_order_relaxed);
  }

  size_t shards() const noexcept {
    return count_;
  }

private:
  struct alignas(64) shard {
    std::mutex mtx;
    job* head = nullptr;
    job* tail = nullptr;
    // Jobs in this shard: written under `mtx`, read without it by scans.
    std::atomic<size_t> size{0};
  };

  /// Unlinks the oldest job of `s`. Call with `s.mtx` held, `s` not empty.
  job_ptr take_locked(shard& s);

  /// Takes a job from the first non-empty shard, starting at the calling
  /// worker's cursor, and publishes it in `slot`; null if every shard was
  /// empty.
  job_ptr try_take(std::atomic<job*>& slot);

  /// Wakes one parked worker.
  void wake_one();

  /// Spins (at most one worker at a time) until a job is counted, the queue
  /// closes or the spin budget is spent. False if `may_spin` is false.
  bool spin(bool may_spin);

  const size_t count_;
  std::unique_ptr<shard[]> shards_;
  alignas(64) std::atomic<size_t> size_{0};
  std::atomic<size_t> idle_{0};
  std::atomic<int> spinners_{0};
  std::atomic<size_t> parked_{0};
  std::atomic<bool> closed_{false};
  alignas(64) std::mutex park_mtx_;
  std::condition_variable cv_;
};

} // namespace weave::internal
