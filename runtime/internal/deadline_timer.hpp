#pragma once

// Internal: answers queued jobs with `timeout` at their deadline, even while
// every worker of their pool is busy (`blocking_pool::submit(fn, timeout)`).
// Loops use it for `loop_context::sleep` too: a sleep's entry is a job whose
// drop at the deadline sends the sleep's wake-up to the loop, holding the
// loop only weakly (see loop.cpp).
//
// One per runtime: a heap of (deadline, job) and one thread of its own
// (`weave-timer`, a hidden detached CAF actor, so it is named and counted
// like every weave thread), started on the first timed submit. At a job's
// deadline the timer calls `cancel_with(timeout)`: a job that a worker has
// started by then is left alone (the compare-and-swap out of `queued`
// decides), so every job still ends exactly once.
//
// Entries are not removed when their job starts; instead, whenever the heap
// has doubled since the last sweep, entries whose job is no longer queued are
// dropped (amortized O(1) per arm), so the heap holds at most about twice the
// number of timed jobs still queued.
//
// Locking: one mutex guards the heap. No user code runs under it: the
// timer cancels due jobs (running their continuations) and drops its
// references to jobs (destroying their functions and values) only after
// unlocking. A continuation of a timed-out job runs on the timer's thread;
// one that blocks delays later timeouts (never a scheduler thread).
//
// Shutdown: a component of the pools phase. Entries still armed are dropped
// (their pools answer those jobs with `shut_down`), the thread ends, and
// later arms are ignored.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "caf/fwd.hpp"

#include "runtime/internal/component.hpp"
#include "runtime/internal/job.hpp"

namespace weave::internal {

class deadline_timer : public component,
                       public std::enable_shared_from_this<deadline_timer> {
public:
  explicit deadline_timer(caf::actor_system& sys);

  shutdown_phase phase() const noexcept override {
    return shutdown_phase::pools;
  }

  void begin_shutdown(shutdown_report& report) override;

  void finish_shutdown(steady_clock::time_point deadline,
                       shutdown_report& report) override;

  /// Fails `j` with `timeout` at `j->deadline` unless it has left the
  /// `queued` state by then. `j->deadline` must not be "never" (`max()`).
  void arm(job_ptr j);

private:
  struct entry {
    steady_clock::time_point at;
    job_ptr what;
  };

  /// Orders the heap so that the earliest deadline is at the front.
  static bool later(const entry& x, const entry& y) noexcept {
    return x.at > y.at;
  }

  void run();

  /// Below this many entries the heap is never swept.
  static constexpr size_t sweep_floor = 64;

  caf::actor_system& sys_;
  std::mutex mtx_;
  std::condition_variable cv_;
  // Signalled when the thread ends (shutdown waits for it).
  std::condition_variable ended_cv_;
  std::vector<entry> heap_;
  size_t live_after_sweep_ = 0;
  bool started_ = false;
  bool stopped_ = false;
  bool ended_ = false;
};

} // namespace weave::internal
