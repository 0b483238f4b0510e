#pragma once

// Internal: notices event-based actors that hold a scheduler thread too long.
//
// weave installs CAF's own work-stealing coordinator with a policy that adds
// two hooks CAF's worker loop already calls around every `resume` (a batch of
// messages handled by one actor): `before_resume` stamps the worker's slot
// with the time and the actor, `after_resume` clears it. The stamps are a
// seqlock per worker (two relaxed stores and a clock read per resume). A
// watchdog thread looks at the slots every min(threshold / 2, 50 ms) and
// reports a worker still inside the same resume after
// `weave.blocking-threshold`: once per resume, with the actor's id and name,
// counted. While every worker is idle the watchdog backs off (up to 30 s
// between looks); a worker that wakes from its sleep with work pokes it back
// to its busy period, so activity after a quiet spell is watched at once.
// The watchdog also wakes a sleeping worker to steal work queued behind a
// worker that stays in one resume (see watched_policy.hpp).
//
// What it can see (CAF 0.17.6 has no per-message hook in Debian's build, its
// actor profiler is compiled out): whole resumes on scheduler threads. A
// resume handles up to `scheduler.max-throughput` messages, so many quick
// messages in one resume also count as holding the thread (they do hold it).
// It cannot see detached actors (they have their own thread, blocking is
// their right) nor interrupt the handler: it reports, it does not fix.
//
// Preemption is not blocking. A worker that the kernel took off its core
// (the machine has more runnable threads than cores) holds its resume for
// wall time it did not use. The watchdog samples each worker thread's wait
// for a core on every look (run_queue_meter.hpp) and reports a resume only
// when its wall time less that wait still exceeds the threshold; the event
// carries both (`held`, `waited_for_cpu`).
//
// Lock: `mtx_` guards the watchdog's wait (stop and poke flags) and the
// callback's handle, nothing else. The watchdog scans the slots and calls
// the user's callback (`runtime::on_slow_handler`) with no lock held, so a
// callback may replace itself, and a worker poking the watchdog never waits
// behind a scan or a callback. The callback runs on the watchdog thread; it
// must not shut the runtime down (that joins the watchdog thread).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "caf/actor_system.hpp"
#include "caf/fwd.hpp"
#include "caf/timespan.hpp"

#include "runtime/internal/run_queue_meter.hpp"
#include "runtime/internal/scheduler_metrics.hpp"
#include "runtime/slow_handler_event.hpp"

namespace weave {

namespace internal {

class blocking_detector {
public:
  /// What a scheduler worker is doing, as published for job placement.
  enum class idle_state : uint8_t { running, polling, claimed, sleeping };

  struct alignas(64) slot {
    /// Odd while the worker is inside a resume.
    std::atomic<uint64_t> epoch{0};
    /// Read by the coordinator to place a job on a worker that is awake.
    std::atomic<idle_state> idle{idle_state::running};
    /// Set (with `wait_cv` notified) by the watchdog: work waits behind a
    /// busy worker; a sleeping worker wakes up to steal it.
    std::atomic<bool> steal_hint{false};
    std::atomic<std::mutex*> wait_lock{nullptr};
    std::atomic<std::condition_variable*> wait_cv{nullptr};
    std::atomic<int64_t> started_ns{0};
    std::atomic<caf::actor_id> actor{0};
    std::atomic<const char*> name{nullptr};
    /// The worker thread's kernel id, set once on its first resume: the
    /// watchdog reads the thread's run-queue wait from its schedstat.
    std::atomic<int32_t> tid{0};
  };

  blocking_detector(size_t workers, caf::timespan threshold);
  ~blocking_detector();

  /// Starts the watchdog thread, listed in the dumps of the runtime whose
  /// configuration is `owner`.
  void start(const void* owner);
  void stop();

  slot* at(size_t worker) noexcept {
    return worker < workers_ ? &slots_[worker] : nullptr;
  }

  /// The slot of the TCP I/O thread, which runs actors' turns too (see
  /// actors/internal/io_unit.hpp): watched like a worker's, reported with
  /// `worker` equal to the number of scheduler workers, never woken or
  /// stolen from.
  slot* io_slot() noexcept {
    return &slots_[workers_];
  }

  /// The number of scheduler workers (the I/O slot's index).
  size_t workers() const noexcept {
    return workers_;
  }

  /// Stamps `s` as inside a turn of `job` (odd epoch) / outside (even).
  static void begin_turn(slot& s, caf::resumable* job) noexcept;
  static void end_turn(slot& s) noexcept {
    s.epoch.fetch_add(1, std::memory_order_release); // even: idle
  }

  size_t reports() const noexcept {
    return reports_.load();
  }

  /// The scheduler workers' counters (metrics.hpp); the detector owns them
  /// because it outlives the actor system, like them.
  scheduler_recorder& metrics() noexcept {
    return metrics_;
  }

  using handler_type = std::function<void(const slow_handler_event&)>;

  /// Takes a thread dump for each look that reports (set before `start`;
  /// see `weave.dump-on-slow-handler`).
  void set_dump(std::function<thread_dump()> take) {
    take_dump_ = std::move(take);
  }

  /// Replaces the report callback; returns without waiting for a call of
  /// the old one that is running (it finishes with its own reference).
  void set_handler(handler_type handler);

  /// Called by the watchdog, with the turn's epoch, when the I/O thread
  /// (io_slot) has been inside one turn since its last look (the TCP
  /// reactor then polls its sockets on a standby thread until that turn
  /// ends; tcp_reactor.hpp). Runs on the watchdog thread, unlocked; must
  /// not block.
  using io_rescue_type = std::function<void(uint64_t)>;
  void set_io_rescue(io_rescue_type rescue);

  /// A worker woke up with work: if the watchdog is backing off (the
  /// scheduler was idle), bring it back to its busy period now.
  void activity() {
    if (backing_off_.load(std::memory_order_relaxed))
      poke();
  }

  static int64_t now_ns() noexcept;

private:
  void watch();

  /// Wakes one sleeping worker (not `busy`) to steal queued work.
  void wake_thief(size_t busy);

  void poke();

  /// Calls the user's callback (or prints), with no lock held.
  void report(const slow_handler_event& ev);

  const size_t workers_;
  const caf::timespan threshold_;
  std::unique_ptr<slot[]> slots_;
  std::unique_ptr<uint64_t[]> reported_; // watchdog only
  // Watchdog only: per worker, the resume whose run-queue wait `meter_`
  // counts.
  std::unique_ptr<uint64_t[]> span_epoch_;
  run_queue_meter meter_;
  std::atomic<size_t> reports_{0};
  scheduler_recorder metrics_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool poked_ = false;
  std::atomic<bool> backing_off_{false};
  // Shared, so that a report can copy it under the lock and call it after.
  std::shared_ptr<const handler_type> handler_;
  std::shared_ptr<const io_rescue_type> io_rescue_;
  std::thread thread_;
  // Written before the watchdog starts, read by it only.
  std::function<thread_dump()> take_dump_;
};

/// Finds the detector of the runtime owning `sys` (null if there is none).
blocking_detector* detector_of(caf::actor_system& sys) noexcept;

} // namespace internal
} // namespace weave
