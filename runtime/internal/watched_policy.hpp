#pragma once

// Internal: weave's scheduler policy — CAF's work stealing, with the blocking
// detector's hooks, and idle workers that are woken when work is queued
// (from outside the scheduler or by an actor). See `watched_policy` below.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include <sys/syscall.h>
#include <unistd.h>

#include "caf/actor_system.hpp"
#include "caf/policy/work_stealing.hpp"
#include "caf/resumable.hpp"
#include "caf/scheduled_actor.hpp"

#include "runtime/deadline_scope.hpp"
#include "runtime/internal/blocking_detector.hpp"
#include "runtime/internal/parked_workers.hpp"
#include "runtime/internal/thread_activity.hpp"

namespace weave::internal {

/// CAF's work-stealing policy with the detector's two hooks and a wake-up
/// protocol in the manner of Go's `wakep` and Tokio's `notify_parked`.
///
/// CAF 0.17.6 queues work on the worker that creates it (an actor's send or
/// spawn from a scheduler thread goes to `exec_later`) and never tells an
/// idle worker; idle workers sleep until the relaxed timeout. Here:
///
/// - A worker without work *searches* (polls its queue and steals, CAF's
///   aggressive and moderate strategies), then *parks*: it joins
///   `parked_workers` and sleeps on its condition variable.
/// - Work queued behind other work on a worker (a second runnable actor;
///   the first runs next on the same worker, which keeps request/response
///   chains on one core) wakes one parked worker, unless a worker is
///   already searching, which then answers for it (a "pending" bit). The
///   woken worker searches, first stealing from the worker that woke it.
///   At most one worker is woken at a time: the woken one counts as a
///   searcher, and a searcher that finds work wakes the next one if work
///   remains or is pending. Beyond CAF's queue operation, an enqueue
///   costs one atomic load when no worker is parked; O(1) in every case.
/// - Work from outside the scheduler (a pool's reply, a plain thread's
///   message) goes to the worker that most recently began searching if it
///   is still searching (claiming it, so a burst does not pile onto one
///   worker), else to a parked worker, which is woken, else to a worker in
///   turn. O(1): no scan of the workers.
/// - Spinning is bounded by the work there is: a worker without work polls
///   (spins) only while fewer than half the workers that are not parked are
///   searching already (Go's rule); otherwise it looks once and parks. So
///   when many workers run dry at once, most park at once instead of
///   burning their cores.
/// - A worker parks only after checking every queue once more, after it
///   announced that it parks; an enqueuer checks for parked workers after
///   its job is queued. Both sides use sequentially consistent operations,
///   so either the enqueuer sees the parked worker or the worker sees the
///   job: no wake-up is lost.
///
/// A parked worker also wakes when the watchdog sees another worker stuck in
/// one resume (a single job queued behind it is not announced: see above),
/// and at the relaxed timeout, which is only a backstop: an idle runtime
/// does not wake up.
///
/// Locks: a worker's wait lock (CAF's) and the `parked_workers` mutex, each
/// held only to flip a flag, notify or move an id; no job, handler or other
/// user code ever runs while either is held, and neither is taken inside
/// the other.
class watched_policy : public caf::policy::work_stealing {
public:
  using super = caf::policy::work_stealing;
  using idle_state = blocking_detector::idle_state;
  static constexpr size_t none = parked_workers::none;

  /// A worker's state as seen by the coordinator's placement.
  enum class worker_state : uint8_t { running, searching, claimed, parked };

  struct coordinator_data : super::coordinator_data {
    explicit coordinator_data(caf::scheduler::abstract_coordinator* p)
      : super::coordinator_data(p) {
      // nop
    }

    /// Searching workers times two, plus one while work is pending: queued
    /// while a worker searched, so the last searcher to stop wakes a worker.
    alignas(64) std::atomic<uint32_t> searching{0};
    /// The worker that most recently began searching.
    alignas(64) std::atomic<size_t> hint{none};
    alignas(64) parked_workers parked;
  };

  struct worker_data : super::worker_data {
    explicit worker_data(caf::scheduler::abstract_coordinator* p)
      : super::worker_data(p) {
      // nop
    }

    worker_data(const worker_data& other) : super::worker_data(other) {
      // nop (the state below starts fresh)
    }

    alignas(64) std::atomic<worker_state> state{worker_state::running};
    /// Set by a waker, under `waitdata.lock`.
    bool woken = false;
    size_t victim = none;
  };

  template <class Worker>
  void before_resume(Worker* self, caf::resumable* job) {
    // A deadline scope lasts at most one actor's turn (deadline_scope.hpp).
    reset_thread_deadline();
    my_metrics(self); // looked up once; the turn's start is the slot's
    if (auto s = my_slot(self))
      blocking_detector::begin_turn(*s, job);
  }

  template <class Worker>
  void after_resume(Worker*, caf::resumable*) {
    reset_thread_deadline();
    if (metrics_ != nullptr && slot_ != nullptr)
      metrics_->resume_ends(
        slot_->started_ns.load(std::memory_order_relaxed));
    if (slot_ != nullptr)
      blocking_detector::end_turn(*slot_);
  }

  /// An actor made runnable by the job this worker runs (a send, a spawn).
  template <class Worker>
  void internal_enqueue(Worker* self, caf::resumable* job) {
    auto& q = d(self).queue;
    bool behind = !q.empty();
    q.prepend(job);
    if (behind)
      notify_work(self->parent(), self->id());
  }

  /// An actor that used up its throughput and has more messages.
  template <class Worker>
  void resume_job_later(Worker* self, caf::resumable* job) {
    auto& q = d(self).queue;
    bool behind = !q.empty();
    q.append(job);
    if (behind)
      notify_work(self->parent(), self->id());
  }

  template <class Coordinator>
  void central_enqueue(Coordinator* self, caf::resumable* job) {
    auto& co = d(self);
    auto n = self->num_workers();
    auto h = co.hint.load(std::memory_order_relaxed);
    if (h < n) {
      auto& st = d(self->worker_by_id(h)).state;
      auto expected = worker_state::searching;
      if (st.load(std::memory_order_relaxed) == expected
          && st.compare_exchange_strong(expected, worker_state::claimed)) {
        self->worker_by_id(h)->external_enqueue(job);
        return;
      }
    }
    if (co.parked.size() > 0) {
      auto i = co.parked.pop(false);
      if (i != none) {
        d(self->worker_by_id(i)).queue.append(job);
        wake(self, i, i); // even if another worker steals the job first
        return;
      }
    }
    thread_local size_t next = std::hash<std::thread::id>{}(
      std::this_thread::get_id());
    auto target = next++ % n;
    self->worker_by_id(target)->external_enqueue(job);
    notify_work(self, target); // a worker may have parked meanwhile
  }

  template <class Worker>
  caf::resumable* dequeue(Worker* self) {
    auto& data = d(self);
    if (auto job = data.queue.take_head())
      return job;
    publish(self, idle_state::polling);
    spin_ = start_searching(self);
    size_t victim = none;
    for (;;) {
      size_t from = none;
      if (auto job = search(self, victim, from)) {
        if (auto m = my_metrics(self); m != nullptr && from != self->id())
          bump(m->steals);
        stop_searching(self, from);
        publish(self, idle_state::running);
        return job;
      }
      victim = park(self);
    }
  }

private:
  // -- searching -------------------------------------------------------------

  /// Joins the searching workers; true if it may also spin (poll) rather
  /// than look once: fewer than half the workers that are not parked
  /// searched already.
  template <class Worker>
  bool start_searching(Worker* self) {
    auto p = self->parent();
    auto& co = d(p);
    d(self).state.store(worker_state::searching);
    auto before = co.searching.fetch_add(2) / 2;
    auto parked = co.parked.size();
    auto awake = p->num_workers() > parked ? p->num_workers() - parked : 1;
    if (2 * before >= awake)
      return false;
    // Outside work goes to the spinning worker that began most recently.
    if (co.hint.load(std::memory_order_relaxed) != self->id())
      co.hint.store(self->id(), std::memory_order_relaxed);
    return true;
  }

  /// Leaves the searching workers; true if this was the last one and work
  /// was pending (the caller must wake a worker or search on).
  template <class Coordinator>
  static bool leave_searching(Coordinator* co) {
    auto& ctl = d(co).searching;
    auto c = ctl.load();
    for (;;) {
      uint32_t next = c >= 4 ? c - 2 : 0;
      if (ctl.compare_exchange_weak(c, next))
        return c < 4 && (c & 1) != 0;
    }
  }

  /// Found a job (in the queue of worker `from`): stops searching, and wakes
  /// the next searcher if work remains.
  template <class Worker>
  void stop_searching(Worker* self, size_t from) {
    auto co = self->parent();
    auto prev = d(self).state.exchange(worker_state::running);
    // Claimed, but took another worker's job: the claimed one waits here.
    bool more = prev == worker_state::claimed && from != self->id();
    if (leave_searching(co) || more
        || (from != self->id() && !d(co->worker_by_id(from)).queue.empty()))
      notify_work(co, more ? self->id() : from);
  }

  /// Polls the own queue and steals (CAF's aggressive, then moderate
  /// strategy; only one look unless `spin_`), stealing from `victim` first.
  template <class Worker>
  caf::resumable* search(Worker* self, size_t victim, size_t& from) {
    auto& data = d(self);
    for (size_t k = 0; k < (spin_ ? 2 : 1); ++k) {
      auto& st = data.strategies[k];
      auto attempts = spin_ ? st.attempts : 1;
      for (size_t i = 0; i < attempts; i += st.step_size) {
        if (auto job = data.queue.take_head()) {
          from = self->id();
          return job;
        }
        if (i % st.steal_interval == 0)
          if (auto job = steal(self, victim, from))
            return job;
        if (st.sleep_duration.count() > 0)
          std::this_thread::sleep_for(st.sleep_duration);
      }
    }
    return nullptr;
  }

  /// Takes the oldest job of `victim`, else of the first worker with work,
  /// starting at a random one.
  template <class Worker>
  caf::resumable* steal(Worker* self, size_t victim, size_t& from) {
    auto p = self->parent();
    auto n = p->num_workers();
    auto take = [&](size_t i) -> caf::resumable* {
      auto& q = d(p->worker_by_id(i)).queue;
      if (i == self->id() || q.empty())
        return nullptr;
      auto job = q.take_tail();
      if (job != nullptr)
        from = i;
      return job;
    };
    if (victim < n)
      if (auto job = take(victim))
        return job;
    auto start = d(self).uniform(d(self).rengine);
    for (size_t k = 0; k < n; ++k)
      if (auto job = take((start + k) % n))
        return job;
    return nullptr;
  }

  /// True if any worker's queue holds a job.
  template <class Worker>
  static bool work_visible(Worker* self) {
    auto p = self->parent();
    for (size_t i = 0; i < p->num_workers(); ++i)
      if (!d(p->worker_by_id(i)).queue.empty())
        return true;
    return false;
  }

  // -- parking ---------------------------------------------------------------

  /// Parks until there may be work; returns the worker to steal from first.
  /// Called while searching; returns searching.
  template <class Worker>
  size_t park(Worker* self) {
    auto& data = d(self);
    auto co = self->parent();
    auto expected = worker_state::searching;
    if (!data.state.compare_exchange_strong(expected, worker_state::parked)) {
      // Claimed: a job is on its way to this queue (or was stolen).
      data.state.store(worker_state::searching);
      return none;
    }
    d(co).parked.push(self->id());
    if (auto m = my_metrics(self))
      bump(m->parks);
    bool pending = leave_searching(co);
    auto s = my_slot(self);
    auto& wait = data.waitdata;
    if (s != nullptr && s->wait_cv.load(std::memory_order_relaxed) == nullptr) {
      s->wait_lock.store(&wait.lock, std::memory_order_release);
      s->wait_cv.store(&wait.cv, std::memory_order_release);
    }
    auto hinted = [s] {
      return s != nullptr && s->steal_hint.load(std::memory_order_acquire);
    };
    auto& relaxed = data.strategies[2];
    size_t victim = none;
    // Checked after announcing the park: an enqueue that did not see this
    // worker parked is visible here.
    while (!pending && !work_visible(self)) {
      std::unique_lock<std::mutex> guard{wait.lock};
      wait.sleeping = true;
      publish(self, idle_state::sleeping);
      bool woken = wait.cv.wait_for(guard, relaxed.sleep_duration, [&] {
        return data.woken || !data.queue.empty() || hinted();
      });
      wait.sleeping = false;
      if (woken) {
        if (data.woken)
          victim = data.victim;
        data.woken = false;
        if (s != nullptr)
          s->steal_hint.store(false, std::memory_order_relaxed);
        break;
      }
      // The relaxed timeout: look at every queue, sleep on if all are empty.
    }
    publish(self, idle_state::polling);
    if (det_ != nullptr)
      det_->activity();
    auto r = d(co).parked.remove(self->id());
    if (r.was_parked || !r.token) {
      spin_ = start_searching(self);
    } else {
      data.state.store(worker_state::searching); // counted by its waker
      spin_ = true;
    }
    return victim;
  }

  /// Work is queued on worker `victim` behind other work: wakes a parked
  /// worker to steal it unless one is searching (which then answers for it).
  template <class Coordinator>
  static void notify_work(Coordinator* self, size_t victim) {
    auto& co = d(self);
    while (co.parked.size() > 0) {
      auto c = co.searching.load();
      if (c >= 2) { // a searcher answers for the work: mark it pending
        if ((c & 1) != 0 || co.searching.compare_exchange_weak(c, c | 1))
          return;
        continue;
      }
      if (!co.searching.compare_exchange_weak(c, 2))
        continue;
      // This thread now holds a searcher's place for the worker it wakes.
      auto i = co.parked.pop(true);
      if (i == none) {
        if (leave_searching(self))
          continue; // work became pending meanwhile
        return;
      }
      wake(self, i, victim);
      return;
    }
  }

  /// Wakes worker `i`, which was popped from the parked workers (and so can
  /// be woken by no one else), to steal from `victim` first.
  template <class Coordinator>
  static void wake(Coordinator* self, size_t i, size_t victim) {
    auto& wd = d(self->worker_by_id(i));
    std::unique_lock<std::mutex> guard{wd.waitdata.lock};
    wd.woken = true;
    wd.victim = victim;
    if (wd.waitdata.sleeping)
      wd.waitdata.cv.notify_one();
  }

  // -- the detector's slot ---------------------------------------------------

  template <class Worker>
  void publish(Worker* self, idle_state st) {
    if (auto s = my_slot(self))
      s->idle.store(st, std::memory_order_release);
  }

  template <class Worker>
  blocking_detector::slot* my_slot(Worker* self) {
    if (slot_ == nullptr && !looked_up_) {
      looked_up_ = true;
      if (auto det = detector_of(self->system())) {
        det_ = det;
        slot_ = det->at(self->id());
        bind_thread_activity(slot_, self->id());
        if (slot_ != nullptr)
          slot_->tid.store(static_cast<int32_t>(::syscall(SYS_gettid)),
                           std::memory_order_release);
      }
    }
    return slot_;
  }

  /// This worker's counters (scheduler_metrics.hpp), or null.
  template <class Worker>
  scheduler_recorder::worker* my_metrics(Worker* self) {
    if (metrics_ == nullptr && !metrics_looked_up_) {
      metrics_looked_up_ = true;
      if (auto det = detector_of(self->system()))
        metrics_ = det->metrics().at(self->id());
    }
    return metrics_;
  }

  scheduler_recorder::worker* metrics_ = nullptr;
  bool metrics_looked_up_ = false;
  blocking_detector* det_ = nullptr;
  blocking_detector::slot* slot_ = nullptr;
  bool looked_up_ = false;
  /// This worker's current search may poll (see `start_searching`).
  bool spin_ = true;
};

/// Installs weave's coordinator (CAF's work stealing with the policy above).
caf::actor_system::module* make_watched_scheduler(caf::actor_system& sys);

} // namespace weave::internal
