#pragma once

// Internal: notices event-based actors that hold a scheduler thread too long.
//
// weave installs CAF's own work-stealing coordinator with a policy that adds
// two hooks CAF's worker loop already calls around every `resume` (a batch of
// messages handled by one actor): `before_resume` stamps the worker's slot
// with the time and the actor, `after_resume` clears it. The stamps are a
// seqlock per worker (two relaxed stores and a clock read per resume). A
// watchdog thread looks at the slots every threshold / 2 and reports a worker
// still inside the same resume after `weave.blocking-threshold`: once per
// resume, with the actor's id and name, counted. While every worker is idle
// the watchdog backs off (up to 2 s between looks), so a handler that starts
// blocking right after a long quiet spell may be noticed up to that much
// later; the reported time held is still exact.
//
// What it can see (CAF 0.17.6 has no per-message hook in Debian's build, its
// actor profiler is compiled out): whole resumes on scheduler threads. A
// resume handles up to `scheduler.max-throughput` messages, so many quick
// messages in one resume also count as holding the thread (they do hold it).
// It cannot see detached actors (they have their own thread, blocking is
// their right) nor interrupt the handler: it reports, it does not fix.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "caf/actor_system.hpp"
#include "caf/policy/work_stealing.hpp"
#include "caf/resumable.hpp"
#include "caf/scheduled_actor.hpp"
#include "caf/timespan.hpp"

#include "runtime/slow_handler_event.hpp"

namespace weave {

namespace internal {

class blocking_detector {
public:
  struct slot {
    /// Odd while the worker is inside a resume.
    std::atomic<uint64_t> epoch{0};
    std::atomic<int64_t> started_ns{0};
    std::atomic<caf::actor_id> actor{0};
    std::atomic<const char*> name{nullptr};
  };

  blocking_detector(size_t workers, caf::timespan threshold);
  ~blocking_detector();

  void start();
  void stop();

  slot* at(size_t worker) noexcept {
    return worker < workers_ ? &slots_[worker] : nullptr;
  }

  size_t reports() const noexcept {
    return reports_.load();
  }

  void set_handler(std::function<void(const slow_handler_event&)> handler);

  static int64_t now_ns() noexcept;

private:
  void watch();

  const size_t workers_;
  const caf::timespan threshold_;
  std::unique_ptr<slot[]> slots_;
  std::unique_ptr<uint64_t[]> reported_; // watchdog only
  std::atomic<size_t> reports_{0};
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::function<void(const slow_handler_event&)> handler_;
  std::thread thread_;
};

/// Finds the detector of the runtime owning `sys` (null if there is none).
blocking_detector* detector_of(caf::actor_system& sys) noexcept;

/// CAF's work-stealing policy plus the detector's two hooks.
class watched_policy : public caf::policy::work_stealing {
public:
  template <class Worker>
  void before_resume(Worker* self, caf::resumable* job) {
    if (slot_ == nullptr && !looked_up_) {
      looked_up_ = true;
      if (auto det = detector_of(self->system()))
        slot_ = det->at(self->id());
    }
    if (slot_ == nullptr)
      return;
    caf::actor_id id = 0;
    const char* name = nullptr;
    if (job->subtype() == caf::resumable::scheduled_actor) {
      auto ptr = static_cast<caf::scheduled_actor*>(job);
      id = ptr->id();
      name = ptr->name();
    }
    slot_->started_ns.store(blocking_detector::now_ns(),
                            std::memory_order_relaxed);
    slot_->actor.store(id, std::memory_order_relaxed);
    slot_->name.store(name, std::memory_order_relaxed);
    slot_->epoch.fetch_add(1, std::memory_order_release); // odd: busy
  }

  template <class Worker>
  void after_resume(Worker*, caf::resumable*) {
    if (slot_ != nullptr)
      slot_->epoch.fetch_add(1, std::memory_order_release); // even: idle
  }

private:
  blocking_detector::slot* slot_ = nullptr;
  bool looked_up_ = false;
};

/// Installs weave's coordinator (CAF's work stealing with the hooks above).
caf::actor_system::module* make_watched_scheduler(caf::actor_system& sys);

} // namespace internal
} // namespace weave
