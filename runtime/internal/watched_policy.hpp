#pragma once

// Internal: weave's scheduler policy — CAF's work stealing, with the blocking
// detector's hooks, placement of outside work on awake workers, and workers
// that the watchdog can wake to steal. See `watched_policy` below.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "caf/actor_system.hpp"
#include "caf/policy/work_stealing.hpp"
#include "caf/resumable.hpp"
#include "caf/scheduled_actor.hpp"

#include "runtime/internal/blocking_detector.hpp"

namespace weave::internal {

/// CAF's work-stealing policy plus the detector's two hooks, and a placement
/// that prefers awake workers.
///
/// Placement: CAF 0.17.6 hands a job enqueued from outside the scheduler (a
/// reply from a pool worker, a message from a plain thread) to its workers
/// round-robin, so half the time it lands on a worker asleep in its relaxed
/// wait, which then has to be woken (a futex round trip, ~50 us on this kind
/// of machine) while another worker is still polling for work and would have
/// taken it at once; or behind a busy worker, where a sleeping worker steals
/// it only after its relaxed sleep. Here each worker publishes
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

/// Installs weave's coordinator (CAF's work stealing with the policy above).
caf::actor_system::module* make_watched_scheduler(caf::actor_system& sys);

} // namespace weave::internal
