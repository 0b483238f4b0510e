#pragma once

// Internal: the shared queue a blocking_pool's workers pull from.
//
// One FIFO (an intrusive list: no allocation per job) under one mutex. Idle
// workers wait in two tiers: at most one spins for a short budget (so a job
// pushed right after another finishes is picked up in well under a
// microsecond, without a futex wake-up) — and only while a core is free for
// it (the pool decides: fewer busy workers than cores), since on a full
// machine a spinner only steals time from the threads doing the work — the
// rest park on a condition variable. `push` wakes a parked worker only when
// nobody spins; a spinner that takes a job wakes a parked worker if more
// jobs are waiting. So every queued job is claimed by an idle worker as soon
// as one exists (a slow job never holds back a queued one while another
// worker is idle), and an idle pool burns no CPU once the spin budget is
// spent.
//
// Locking: the mutex guards the list only. No user code runs under it: jobs
// leave the queue as references handed to the caller (`pop`, `close`,
// `drain`), who runs, answers or releases them after unlocking.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

#include "caf/timespan.hpp"

#include "runtime/internal/job.hpp"

namespace weave::internal {

class job_queue {
public:
  job_queue() = default;
  /// Releases jobs still queued (a queue is normally closed first).
  ~job_queue();
  job_queue(const job_queue&) = delete;
  job_queue& operator=(const job_queue&) = delete;

  /// Appends `j`. Returns false (and leaves `j` alone) once closed. Sets
  /// `want_worker` if more jobs are queued than workers are idle.
  bool push(job_ptr j, bool& want_worker);

  /// Takes the oldest job, waiting while the queue is empty. Returns null
  /// once the queue is closed (queued jobs are handed to `close()`'s caller).
  /// `may_spin`: the caller may spin first (a spinning thread only pays off
  /// when a core is free for it). The job is stored in `slot` (which must be
  /// empty), with a reference of the slot's own, before the lock is
  /// released: a job is at every moment either queued (and `close()` hands it
  /// over) or in a slot, never in neither, so a shutdown that closes the
  /// queue and then empties the slots misses none.
  job_ptr pop(bool may_spin, std::atomic<job*>& slot);

  /// Refuses further pushes, wakes every waiting worker and returns the jobs
  /// that were still queued, oldest first.
  std::vector<job_ptr> close();

  /// Returns the jobs queued now, oldest first, and leaves the queue open.
  std::vector<job_ptr> drain();

  size_t size() const noexcept {
    return size_.load(std::memory_order_relaxed);
  }

private:
  job_ptr take_locked();

  mutable std::mutex mtx_;
  std::condition_variable cv_;
  job* head_ = nullptr;
  job* tail_ = nullptr;
  std::atomic<size_t> size_{0};
  std::atomic<size_t> idle_{0};
  size_t parked_ = 0;
  std::atomic<int> spinners_{0};
  std::atomic<bool> closed_{false};
};

} // namespace weave::internal
