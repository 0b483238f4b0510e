// The stop ladder of a blocking pool: how a running job that takes a stop
// token is asked to stop, given a grace period, and given up on (see the
// top of pool_impl.hpp).

#include <string>

#include "caf/make_counted.hpp"

#include "runtime/internal/pool_impl.hpp"

namespace weave::internal {

namespace {

/// A timer entry that acts on a pool's job when it is due. The timer drops
/// a due entry (`cancel_with(timeout)`), which calls `drop`; an entry still
/// armed at shutdown is released without being dropped. It holds its pool
/// weakly: a pool that is gone has nothing left to act on.
class pool_watch : public counted_job {
public:
  pool_watch(std::weak_ptr<pool_impl> pool, job_ptr target)
    : pool_(std::move(pool)), target_(std::move(target)) {
    // nop
  }

  bool run() noexcept override {
    return true; // never queued on a pool
  }

  bool drop(caf::error) noexcept override {
    if (auto pool = pool_.lock())
      act(*pool, *target_);
    return true;
  }

  /// Worth keeping while its job is queued or runs (the timer sweeps the
  /// rest).
  bool timer_entry_live() const noexcept override {
    auto st = target_->current_state();
    return current_state() == state::queued
           && (st == state::queued || st == state::running);
  }

protected:
  virtual void act(pool_impl& pool, job& target) noexcept = 0;

private:
  std::weak_ptr<pool_impl> pool_;
  job_ptr target_;
};

/// At a job's deadline.
class deadline_watch final : public pool_watch {
public:
  using pool_watch::pool_watch;

  void act(pool_impl& pool, job& target) noexcept override {
    pool.deadline_reached(target);
  }
};

/// At the end of a stopped job's grace period.
class grace_watch final : public pool_watch {
public:
  grace_watch(std::weak_ptr<pool_impl> pool, job_ptr target, errc cause)
    : pool_watch(std::move(pool), std::move(target)), cause_(cause) {
    // nop
  }

  void act(pool_impl& pool, job& target) noexcept override {
    pool.grace_expired(target, cause_);
  }

private:
  errc cause_;
};

} // namespace

job_ptr make_deadline_watch(std::weak_ptr<pool_impl> pool, job_ptr target) {
  return caf::make_counted<deadline_watch>(std::move(pool), std::move(target));
}

void pool_impl::arm_watch(job_ptr watch, steady_clock::time_point at) {
  if (timer_ == nullptr)
    return;
  watch->deadline = at;
  timer_->arm(std::move(watch));
}

void pool_impl::deadline_reached(job& target) noexcept {
  if (target.cancel_with(make_error(errc::timeout, "no worker started the "
                                                   "job before its timeout")))
    return;
  target.wait_while_dropping();
  target.stop_running(errc::timeout);
}

bool pool_impl::stop_running(job& target, errc cause) noexcept {
  // Only the first request arms a grace period (and sets the cause).
  bool again = target.stopped();
  if (!target.request_stop(cause))
    return false;
  if (again)
    return true;
  try {
    auto watch = caf::make_counted<grace_watch>(weak_from_this(),
                                                job_ptr{&target}, cause);
    arm_watch(std::move(watch), saturating_add(steady_clock::now(),
                                               cancel_grace_));
  } catch (...) {
    // Out of memory for the entry: the stop is still requested; the job
    // is not given up on.
  }
  return true;
}

void pool_impl::grace_expired(job& target, errc cause) noexcept {
  size_t index = capacity_;
  {
    std::unique_lock<std::mutex> guard{live_mtx_};
    // After a shutdown's deadline the shutdown owns the slots.
    if (finished_)
      return;
    auto used = slots_used_.load(std::memory_order_relaxed);
    for (size_t i = 0; i < used; ++i) {
      auto expected = &target;
      // Taken out of the slot: its worker will not deliver it.
      if (running_[i].compare_exchange_strong(expected, nullptr,
                                              std::memory_order_acq_rel)) {
        index = i;
        break;
      }
    }
    if (index == capacity_)
      return; // it ended (or was never started) meanwhile
    quarantined_[index] = 1;
    ++quarantined_live_;
    quarantined_now_.fetch_add(1, std::memory_order_relaxed);
    quarantined_total_.fetch_add(1, std::memory_order_relaxed);
    // No longer one of the pool's workers (nor a busy one): a fresh one
    // may take its place.
    spawned_.fetch_sub(1, std::memory_order_acq_rel);
    busy_.fetch_sub(1, std::memory_order_relaxed);
  }
  job_ptr taken{&target, false}; // adopts the slot's reference
  try {
    taken->drop(make_error(cause, "pool '" + name_ + "': the job was still "
                                    "running when its grace period after "
                                    "the stop request ended; its worker "
                                    "is quarantined"));
  } catch (...) {
    taken->drop(make_error(cause));
  }
  // A replacement, if queued jobs want one (a later submit starts one
  // otherwise).
  if (queue_.size() > 0)
    maybe_spawn_worker();
}

bool pool_impl::leave_if_quarantined(size_t index) {
  {
    std::unique_lock<std::mutex> guard{live_mtx_};
    if (!quarantined_[index])
      return false;
    quarantined_[index] = 0;
    --quarantined_live_;
    quarantined_now_.fetch_sub(1, std::memory_order_relaxed);
    free_slots_.push_back(index);
  }
  // Its slot is free: jobs that waited for a worker may get one now.
  if (queue_.size() > 0)
    maybe_spawn_worker();
  return true;
}

std::vector<job_ptr> pool_impl::stoppable_jobs() {
  std::vector<job_ptr> jobs;
  jobs.reserve(capacity_);
  for (size_t i = 0; i < capacity_; ++i) {
    stop_visitors_[i].fetch_add(1);
    if (auto* j = stoppable_[i].load())
      jobs.emplace_back(j); // its worker waits until this reference exists
    stop_visitors_[i].fetch_sub(1);
  }
  return jobs;
}

void pool_impl::request_stop_of_running(errc cause) noexcept {
  // Jobs claimed from now on are asked when they register (worker_main).
  auto none = uint8_t{0};
  stop_all_cause_.compare_exchange_strong(none, static_cast<uint8_t>(cause));
  std::vector<job_ptr> jobs;
  try {
    jobs = stoppable_jobs();
  } catch (...) {
    // Out of memory: the shutdown's deadline still bounds the jobs.
  }
  // Through the pool, so that the grace period applies as for a cancel.
  for (auto& j : jobs)
    j->stop_running(cause);
  // The references go here, after unlocking (a job may end meanwhile).
}

size_t pool_impl::abandon_stopped_jobs() {
  std::vector<job_ptr> stopped;
  for (auto& j : stoppable_jobs())
    if (j->stopped())
      stopped.push_back(j); // a reference of our own: safe to compare
  std::vector<job_ptr> taken;
  {
    std::unique_lock<std::mutex> guard{live_mtx_};
    auto used = slots_used_.load(std::memory_order_relaxed);
    for (auto& j : stopped) {
      for (size_t i = 0; i < used; ++i) {
        auto expected = j.get();
        if (running_[i].compare_exchange_strong(expected, nullptr,
                                                std::memory_order_acq_rel)) {
          taken.emplace_back(j.get(), false); // adopts the slot's reference
          break;
        }
      }
    }
  }
  abandoned_live_.fetch_add(static_cast<long>(taken.size()),
                            std::memory_order_acq_rel);
  for (auto& j : taken)
    j->drop(make_error(errc::shut_down,
                       "pool '" + name_ + "': still running when the grace "
                       "period after the shutdown's stop request ended, "
                       "abandoned"));
  return taken.size();
}

} // namespace weave::internal
