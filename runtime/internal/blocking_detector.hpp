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
// worker that stays in one resume (see `watched_policy`).
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
  /// What a scheduler worker does when it is not inside a resume.
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

  const size_t workers_;
  const caf::timespan threshold_;
  std::unique_ptr<slot[]> slots_;
  std::unique_ptr<uint64_t[]> reported_; // watchdog only
  std::atomic<size_t> reports_{0};
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool poked_ = false;
  std::atomic<bool> backing_off_{false};
  std::function<void(const slow_handler_event&)> handler_;
  std::thread thread_;
};

/// Finds the detector of the runtime owning `sys` (null if there is none).
blocking_detector* detector_of(caf::actor_system& sys) noexcept;

/// CAF's work-stealing policy plus the detector's two hooks, and a placement
/// that prefers awake workers.
///
/// Placement: CAF 0.17.6 hands a job enqueued from outside the scheduler (a
/// reply from a pool worker, a message from a plain thread) to its workers
/// round-robin, so half the time it lands on a worker asleep in its relaxed
/// wait, which then has to be woken (a futex round trip, ~50 us on this kind
/// of machine) while another worker is still polling for work and would have
/// taken it at once; or behind a busy worker, where a sleeping worker steals
/// it only after its relaxed sleep (100 ms). Here each worker publishes
/// whether it is running, polling or asleep, and the coordinator gives the
/// job to a polling worker (claiming it, so one burst does not pile onto one
/// worker), else wakes a sleeping one, else falls back to round-robin. The
/// worker's dequeue is CAF's (poll aggressively, then moderately, then sleep
/// on its condition variable with the relaxed timeout), with the state
/// published around it; CAF's sleep/notify protocol is unchanged, so a job
/// placed while a worker falls asleep still wakes it. A sleeping worker also
/// wakes when the watchdog sees another worker stuck in one resume (work
/// queued behind it would otherwise wait for a relaxed timeout), so the
/// relaxed timeout is only a backstop and can be long: an idle runtime does
/// not wake up.
class watched_policy : public caf::policy::work_stealing {
public:
  using idle_state = blocking_detector::idle_state;

  template <class Worker>
  void before_resume(Worker* self, caf::resumable* job) {
    auto s = my_slot(self);
    if (s == nullptr)
      return;
    caf::actor_id id = 0;
    const char* name = nullptr;
    if (job->subtype() == caf::resumable::scheduled_actor) {
      auto ptr = static_cast<caf::scheduled_actor*>(job);
      id = ptr->id();
      name = ptr->name();
    }
    s->started_ns.store(blocking_detector::now_ns(), std::memory_order_relaxed);
    s->actor.store(id, std::memory_order_relaxed);
    s->name.store(name, std::memory_order_relaxed);
    s->epoch.fetch_add(1, std::memory_order_release); // odd: busy
  }

  template <class Worker>
  void after_resume(Worker*, caf::resumable*) {
    if (slot_ != nullptr)
      slot_->epoch.fetch_add(1, std::memory_order_release); // even: idle
  }

  template <class Worker>
  caf::resumable* dequeue(Worker* self) {
    auto s = my_slot(self);
    auto publish = [s](idle_state st) {
      if (s != nullptr)
        s->idle.store(st, std::memory_order_release);
    };
    auto& data = d(self);
    auto found = [&](caf::resumable* job) {
      publish(idle_state::running);
      return job;
    };
    publish(idle_state::polling);
    // Aggressive, then moderate polling of the own queue, stealing now and
    // then (CAF's strategies 0 and 1).
    for (size_t k = 0; k < 2; ++k) {
      auto& st = data.strategies[k];
      for (size_t i = 0; i < st.attempts; i += st.step_size) {
        if (auto job = data.queue.take_head())
          return found(job);
        if (i % st.steal_interval == 0)
          if (auto job = try_steal(self))
            return found(job);
        if (st.sleep_duration.count() > 0)
          std::this_thread::sleep_for(st.sleep_duration);
      }
    }
    // Relaxed: sleep on the condition variable until a job is placed here,
    // stealing after every `steal_interval` timeouts (CAF's strategy 2).
    // The watchdog may also wake it to steal (see `blocking_detector`).
    auto& relaxed = data.strategies[2];
    auto& wait = data.waitdata;
    if (s != nullptr && s->wait_cv.load(std::memory_order_relaxed) == nullptr) {
      s->wait_lock.store(&wait.lock, std::memory_order_release);
      s->wait_cv.store(&wait.cv, std::memory_order_release);
    }
    auto hinted = [s] {
      return s != nullptr && s->steal_hint.load(std::memory_order_acquire);
    };
    for (size_t timeouts = 1;;) {
      bool woken;
      {
        std::unique_lock<std::mutex> guard{wait.lock};
        wait.sleeping = true;
        publish(idle_state::sleeping);
        woken = wait.cv.wait_for(guard, relaxed.sleep_duration, [&] {
          return !data.queue.empty() || hinted();
        });
        wait.sleeping = false;
      }
      publish(idle_state::polling);
      if (auto job = data.queue.take_head()) {
        if (det_ != nullptr)
          det_->activity();
        return found(job);
      }
      bool steal = woken ? s != nullptr && s->steal_hint.exchange(false)
                         : timeouts++ % relaxed.steal_interval == 0;
      for (size_t k = 0; steal && k < self->parent()->num_workers(); ++k)
        if (auto job = try_steal(self))
          return found(job);
    }
  }

  template <class Coordinator>
  void central_enqueue(Coordinator* self, caf::resumable* job) {
    auto n = self->num_workers();
    auto first = d(self).next_worker++;
    if (auto det = detector(self)) {
      size_t sleeper = n;
      for (size_t k = 0; k < n; ++k) {
        auto i = (first + k) % n;
        auto s = det->at(i);
        if (s == nullptr)
          break;
        auto st = s->idle.load(std::memory_order_acquire);
        if (st == idle_state::polling
            && s->idle.compare_exchange_strong(st, idle_state::claimed)) {
          self->worker_by_id(i)->external_enqueue(job);
          return;
        }
        if (st == idle_state::sleeping && sleeper == n)
          sleeper = i;
      }
      if (sleeper != n) {
        self->worker_by_id(sleeper)->external_enqueue(job);
        return;
      }
    }
    self->worker_by_id(first % n)->external_enqueue(job);
  }

private:
  template <class Worker>
  blocking_detector::slot* my_slot(Worker* self) {
    if (slot_ == nullptr && !looked_up_) {
      looked_up_ = true;
      if (auto det = detector_of(self->system())) {
        det_ = det;
        slot_ = det->at(self->id());
      }
    }
    return slot_;
  }

  /// The coordinator's detector, looked up once (any thread may enqueue).
  template <class Coordinator>
  blocking_detector* detector(Coordinator* self) {
    auto det = coordinator_detector_.load(std::memory_order_acquire);
    if (det == nullptr && !coordinator_looked_up_.load()) {
      det = detector_of(self->system());
      coordinator_detector_.store(det, std::memory_order_release);
      coordinator_looked_up_.store(true);
    }
    return det;
  }

  blocking_detector* det_ = nullptr;
  blocking_detector::slot* slot_ = nullptr;
  bool looked_up_ = false;
  std::atomic<blocking_detector*> coordinator_detector_{nullptr};
  std::atomic<bool> coordinator_looked_up_{false};
};

/// Installs weave's coordinator (CAF's work stealing with the hooks above).
caf::actor_system::module* make_watched_scheduler(caf::actor_system& sys);

} // namespace internal
} // namespace weave
