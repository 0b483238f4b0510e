#include "runtime/blocking_pool.hpp"

#include <algorithm>
#include <thread>

#include "caf/actor_system.hpp"
#include "caf/blocking_actor.hpp"
#include "caf/spawn_options.hpp"

#include "runtime/deadline_scope.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/pool_hooks.hpp"
#include "runtime/internal/pool_impl.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/internal/spawn_guard.hpp"
#include "runtime/internal/thread_activity.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/runtime.hpp"
#include "runtime/this_thread.hpp"

namespace weave {

namespace internal {

namespace {

/// The index of the calling thread among its pool's workers.
thread_local size_t tl_worker_index = 0;

caf::error spawn_error(const std::string& name) {
  return make_error(errc::job_failed,
                    "pool '" + name + "' could not start a worker ("
                      + current_exception_message()
                      + ") and has none running: the job never ran");
}

caf::error abandoned_error(const std::string& name) {
  return make_error(errc::shut_down, "pool '" + name
                                       + "': still running at the shutdown "
                                         "deadline, abandoned");
}

} // namespace

pool_impl::pool_impl(caf::actor_system& sys,
                     std::shared_ptr<deadline_timer> timer, size_t max_workers,
                     std::string name, caf::timespan cancel_grace,
                     size_t max_quarantined)
  : sys_(sys), timer_(std::move(timer)), max_workers_(max_workers),
    name_(std::move(name)), cancel_grace_(cancel_grace),
    max_quarantined_(max_quarantined),
    capacity_(max_workers + max_quarantined),
    cores_(std::max(1u, std::thread::hardware_concurrency())),
    queue_(max_workers),
    quarantined_(capacity_, 0),
    stoppable_(new std::atomic<job*>[capacity_]),
    stop_visitors_(new std::atomic<uint32_t>[capacity_]),
    running_(new std::atomic<job*>[capacity_]),
    awaited_(capacity_, nullptr) {
  for (size_t i = 0; i < capacity_; ++i) {
    running_[i].store(nullptr);
    stoppable_[i].store(nullptr);
    stop_visitors_[i].store(0);
  }
}

void pool_impl::enqueue(job_ptr j, bool timed, uint64_t key) {
  j->owner = this;
  j->queued_at = metrics_clock::now();
  bool want_worker = false;
  timed = timed && timer_ != nullptr
          && j->deadline != steady_clock::time_point::max();
  // The queue may hand the job to a worker at once: keep a reference to
  // arm the timer with. A job that takes a stop token is watched instead:
  // at its deadline it is answered if queued, asked to stop if running.
  job_ptr armed;
  bool watched = false;
  if (timed) {
    armed = j;
    watched = j->takes_stop_token();
  }
  if (!queue_.push(j, want_worker, key)) {
    j->cancel_with(make_error(errc::shut_down,
                              "pool '" + name_ + "' is shut down"));
    return;
  }
  if (want_worker)
    maybe_spawn_worker();
  if (watched) {
    auto at = armed->deadline;
    arm_watch(make_deadline_watch(shared_from_this(), std::move(armed)), at);
  } else if (armed) {
    timer_->arm(std::move(armed));
  }
}

pool_impl::spawn_outcome pool_impl::maybe_spawn_worker() {
  if (spawned_.load(std::memory_order_acquire) >= max_workers_)
    return spawn_outcome::none;
  std::vector<job_ptr> orphans;
  caf::error failure;
  {
    // Spawned under the lock (a spawn runs no user code), so that a worker
    // never starts on an actor system that a finished shutdown let go of,
    // and so that spawns are serial: `spawned_` counts (and names) only
    // workers that exist, and a failed spawn has nothing to roll back but
    // its own `live_` count.
    std::unique_lock<std::mutex> guard{live_mtx_};
    auto n = spawned_.load(std::memory_order_relaxed);
    if (finished_ || n >= max_workers_)
      return spawn_outcome::none;
    // A slot for it: a fresh one, or one a quarantined worker freed. None
    // while `max_quarantined_` workers are quarantined: the pool runs short
    // until one of them ends.
    size_t index = 0;
    bool fresh = free_slots_.empty();
    if (!fresh)
      index = free_slots_.back();
    else if (slots_used_.load(std::memory_order_relaxed) < capacity_)
      index = slots_used_.load(std::memory_order_relaxed);
    else
      return spawn_outcome::none;
    ++live_;
    try {
      run_pool_hook(pool_hook_point::spawning, name_);
      auto self = shared_from_this();
      spawn_guard sg;
      sys_.spawn<caf::hidden>(
        [self, index](caf::blocking_actor*) { self->worker_main(index); });
      if (fresh)
        slots_used_.store(index + 1, std::memory_order_release);
      else
        free_slots_.pop_back();
      ++started_;
      spawned_.store(n + 1, std::memory_order_release);
      return spawn_outcome::spawned;
    } catch (...) {
      // No worker was started: shutdown must not wait for one.
      if (--live_ == 0)
        live_cv_.notify_all();
      failure = spawn_error(name_);
      // With no worker alive (none could ever be started so far), nothing
      // would run the queued jobs: they are answered with the failure.
      // Taken under the lock, so that no worker started meanwhile by
      // another thread could have run them instead.
      if (live_ == 0)
        orphans = queue_.drain();
    }
  }
  for (auto& j : orphans)
    if (!j->cancel_with(failure))
      j->wait_while_dropping(); // a canceller still counts on `dropped`
  return spawn_outcome::failed;
}

void pool_impl::release_slot(size_t index) noexcept {
  // Empty already: a shutdown took it, and answered or left it to its
  // canceller (the job never ran, so it is not among the abandoned).
  if (auto mine = running_[index].exchange(nullptr, std::memory_order_acq_rel))
    intrusive_ptr_release(mine);
}

void pool_impl::worker_main(size_t index) {
  // However the worker ends, shutdown stops waiting for it.
  struct live_guard {
    pool_impl* pool;
    ~live_guard() {
      std::unique_lock<std::mutex> guard{pool->live_mtx_};
      if (--pool->live_ == 0)
        pool->live_cv_.notify_all();
    }
  } live{this};
  try {
    set_this_thread_name(name_ + "_" + std::to_string(index));
  } catch (...) {
    // Only the name is lost (no memory for it): the worker works unnamed.
  }
  set_current_self_wait_guard(this);
  tl_worker_index = index;
  set_thread_role(thread_role::pool_worker);
  auto activity = this_thread_activity(); // for thread dumps
  for (;;) {
    // Handed over in this worker's slot (see job_queue::pop): a shutdown
    // finds the job there from this moment on, before it is even claimed.
    auto j = queue_.pop(busy_.load(std::memory_order_relaxed) + 1 < cores_,
                        running_[index]);
    if (!j)
      break;
    run_pool_hook(pool_hook_point::popped, name_);
    if (j->deadline != steady_clock::time_point::max()
        && steady_clock::now() > j->deadline) {
      // Too late to start (the timer may not have got to it yet).
      if (!j->cancel_with(make_error(errc::timeout,
                                     "deadline passed while queued")))
        j->wait_while_dropping();
      release_slot(index);
      continue;
    }
    if (activity != nullptr)
      activity->begin_job(*j);
    if (!j->try_start()) {
      if (activity != nullptr)
        activity->end_job(thread_state::spinning);
      // Cancelled (by its caller, its timer or a shutdown) before this
      // worker could claim it: the canceller counts it and tells the
      // caller; this worker (and so the pool) outlives the counting.
      j->wait_while_dropping();
      release_slot(index);
      continue;
    }
    run_pool_hook(pool_hook_point::started, name_);
    busy_.fetch_add(1, std::memory_order_relaxed);
    auto started_at = metrics_.started(index, j->queued_at);
    bool stoppable = j->takes_stop_token();
    if (stoppable) {
      stoppable_[index].store(j.get());
      // A shutdown that began after this worker claimed the job missed it.
      if (auto pending = static_cast<errc>(stop_all_cause_.load());
          pending != errc{})
        j->stop_running(pending);
    }
    // Inside the job, its deadline is the thread's (jobs it submits
    // inherit it; see deadline_scope.hpp).
    auto outer = exchange_current_deadline(j->deadline);
    auto ok = j->run();
    exchange_current_deadline(outer);
    metrics_.ended(index, started_at);
    if (stoppable) {
      stoppable_[index].store(nullptr);
      while (stop_visitors_[index].load() != 0)
        std::this_thread::yield(); // a shutdown copies a reference
    }
    // A concurrent stop request still uses this pool: wait it out.
    j->wait_while_stopping();
    if (activity != nullptr)
      activity->end_job(thread_state::spinning);
    (ok ? completed_ : j->stopped() ? stopped_ : failed_)
      .fetch_add(1, std::memory_order_relaxed);
    if (auto mine = running_[index].exchange(nullptr, std::memory_order_acq_rel)) {
      busy_.fetch_sub(1, std::memory_order_relaxed);
      intrusive_ptr_release(mine);
      j->deliver();
    } else if (leave_if_quarantined(index)) {
      // Its grace period ended before it returned: its caller was told,
      // and this worker was replaced (and no longer counted as busy). It
      // ends here.
      census_late_result_dropped();
      break;
    } else {
      // A shutdown abandoned it at its deadline and told the caller.
      busy_.fetch_sub(1, std::memory_order_relaxed);
      abandoned_live_.fetch_sub(1, std::memory_order_acq_rel);
      census_late_result_dropped();
    }
  }
  set_current_self_wait_guard(nullptr);
}

void pool_impl::begin_shutdown(shutdown_report& report) {
  // Quarantined when the shutdown began (one may end while it waits).
  report.workers_quarantined += quarantined_now_.load();
  // close() hands over the queued jobs and unlocks before they are answered.
  for (auto& j : queue_.close()) {
    if (j->cancel_with(
          make_error(errc::shut_down, "pool '" + name_ + "' shut down")))
      ++report.jobs_cancelled;
    else
      j->wait_while_dropping(); // a canceller still counts on `dropped`
  }
  {
    std::unique_lock<std::mutex> guard{live_mtx_};
    if (stops_sent_ == steady_clock::time_point::max())
      stops_sent_ = steady_clock::now();
  }
  request_stop_of_running(errc::shut_down);
}

bool pool_impl::finished() const {
  std::unique_lock<std::mutex> guard{live_mtx_};
  return finished_;
}

void pool_impl::finish_shutdown(steady_clock::time_point deadline,
                                shutdown_report& report) {
  size_t live = 0;
  size_t spawned = 0;
  // The grace period of the shutdown's stop requests ends before the
  // deadline: jobs that ignore their stop are answered then (the timer,
  // which would do it for a cancel, shuts down in this same phase).
  steady_clock::time_point grace_end;
  size_t early = 0;
  {
    std::unique_lock<std::mutex> guard{live_mtx_};
    grace_end = std::min(deadline, saturating_add(stops_sent_, cancel_grace_));
  }
  if (grace_end < deadline) {
    {
      std::unique_lock<std::mutex> guard{live_mtx_};
      live_cv_.wait_until(guard, grace_end, [this] { return live_ == 0; });
    }
    early = abandon_stopped_jobs();
    report.jobs_abandoned += early;
  }
  {
    std::unique_lock<std::mutex> guard{live_mtx_};
    live_cv_.wait_until(guard, deadline, [this] { return live_ == 0; });
    finished_ = true;
    live = live_;
    spawned = started_;
  }
  // Every job a worker took from the (now closed) queue is in its slot. One
  // still there now either has not started (its worker was slow to claim
  // it): it is answered `shut_down` like a queued job and never runs; or was
  // cancelled meanwhile: its canceller answers it; or it runs: it is
  // abandoned, its caller hears `shut_down` at once, and the late result
  // will be dropped (and counted). Jobs an earlier shutdown abandoned and
  // that still run are counted again here: this report, too, leaves them
  // behind.
  // (Less the ones this shutdown abandoned at its grace period: counted.)
  auto earlier = std::max(0L, abandoned_live_.load(std::memory_order_acquire)
                                - static_cast<long>(early));
  std::vector<job_ptr> taken;
  for (size_t i = 0; i < slots_used_.load(std::memory_order_acquire); ++i)
    if (auto j = running_[i].exchange(nullptr, std::memory_order_acq_rel))
      taken.emplace_back(j, false); // adopts the slot's reference
  std::vector<job_ptr> abandoned;
  for (auto& j : taken) {
    if (j->cancel_with(
          make_error(errc::shut_down, "pool '" + name_ + "' shut down"))) {
      ++report.jobs_cancelled;
      continue;
    }
    j->wait_while_dropping();
    if (j->current_state() != job::state::dropped)
      abandoned.emplace_back(std::move(j));
  }
  abandoned_live_.fetch_add(static_cast<long>(abandoned.size()),
                            std::memory_order_acq_rel);
  for (auto& j : abandoned)
    j->drop(abandoned_error(name_));
  report.jobs_abandoned += abandoned.size() + static_cast<size_t>(earlier);
  report.threads_joined += spawned - live;
  report.threads_abandoned += live;
  report.jobs_completed += completed_.load() + failed_.load()
                           + stopped_.load();
}

bool pool_impl::begin_wait(const job& awaited) {
  if (awaited.owner != this)
    return false;
  // Fewer workers than allowed may exist yet: start one for the queued job.
  // If that fails, only the workers that exist can run it.
  auto spawn_failed = maybe_spawn_worker() == spawn_outcome::failed;
  auto capacity = spawn_failed ? spawned_.load(std::memory_order_acquire)
                               : max_workers_;
  auto index = tl_worker_index;
  size_t waiting = 0;
  {
    // Exact, not a counter: a worker counts as waiting only while the job
    // it waits for is still queued. One whose job has started (or ended)
    // will be woken without needing another worker, even if it has not
    // woken yet. Entries are valid while in the table (see pool_impl.hpp).
    std::unique_lock<std::mutex> guard{wait_mtx_};
    awaited_[index] = &awaited;
    for (auto x : awaited_)
      if (x != nullptr && x->current_state() == job::state::queued)
        ++waiting;
    if (waiting >= capacity)
      awaited_[index] = nullptr;
  }
  if (waiting >= capacity)
    raise(make_error(errc::would_deadlock,
                     "a worker of pool '" + name_ + "' waits for a job queued "
                       + "in the same pool while every other worker does "
                         "too"
                       + (spawn_failed ? " (and no further worker could be "
                                         "started)"
                                       : "")
                       + ": nobody would run it; use a second pool, or "
                         "then() instead of get()"));
  return true;
}

void pool_impl::end_wait() noexcept {
  std::unique_lock<std::mutex> guard{wait_mtx_};
  awaited_[tl_worker_index] = nullptr;
}

blocking_pool::stats_type pool_impl::stats() const {
  blocking_pool::stats_type s;
  s.max_workers = max_workers_;
  s.workers = spawned_.load(std::memory_order_relaxed);
  s.busy = busy_.load(std::memory_order_relaxed);
  s.queued = queue_.size();
  s.completed = completed_.load(std::memory_order_relaxed);
  s.failed = failed_.load(std::memory_order_relaxed);
  s.cancelled = dropped.load(std::memory_order_relaxed);
  s.stopped = stopped_.load(std::memory_order_relaxed);
  s.quarantined = quarantined_now_.load(std::memory_order_relaxed);
  s.quarantined_total = quarantined_total_.load(std::memory_order_relaxed);
  return s;
}

} // namespace internal

blocking_pool::blocking_pool(runtime& rt, size_t max_workers, std::string name) {
  if (max_workers == 0 || max_workers > max_pool_size)
    raise(make_error(errc::invalid_argument,
                     "blocking_pool '" + name + "': max_workers is "
                       + std::to_string(max_workers) + ", allowed 1.."
                       + std::to_string(max_pool_size)));
  // system() throws `shut_down` once shutdown has begun; registration
  // refuses (throws) a pool that would come too late for shutdown to stop.
  impl_ = std::make_shared<internal::pool_impl>(
    rt.system(), internal::runtime_access::timer(rt), max_workers,
    std::move(name), rt.config().cancel_grace(),
    rt.config().max_quarantined());
  shutdown_deadline_ = rt.config().shutdown_deadline();
  internal::runtime_access::register_component(rt, impl_);
}

blocking_pool::blocking_pool(std::shared_ptr<internal::pool_impl> impl,
                             caf::timespan deadline, bool owning)
  : impl_(std::move(impl)), shutdown_deadline_(deadline), owning_(owning) {
  // nop
}

blocking_pool::~blocking_pool() {
  if (!owning_ || !impl_)
    return;
  // Shut down already (by its owner or the runtime): nothing to wait for
  // again; the runtime's shutdown still counts a job left running.
  shutdown_report ignored;
  impl_->begin_shutdown(ignored);
  if (impl_->finished())
    return;
  // Destroyed by one of its own jobs: waiting for the workers would include
  // waiting for this one; they end once their current jobs return. On a
  // thread that must never block (a scheduler thread, an event loop's own
  // thread), running jobs are not waited for either: they finish on their
  // own, and the runtime's shutdown waits for (or abandons) those still
  // running then.
  if (internal::current_self_wait_guard() == impl_.get()
      || this_thread_must_not_block())
    return;
  impl_->finish_shutdown(internal::deadline_after(shutdown_deadline_),
                         ignored);
}

void blocking_pool::enqueue(internal::job_ptr j, bool timed, uint64_t key) {
  impl_->enqueue(std::move(j), timed, key);
}

blocking_pool::stats_type blocking_pool::stats() const {
  return impl_->stats();
}

const std::string& blocking_pool::name() const noexcept {
  return impl_->name();
}

size_t blocking_pool::max_workers() const noexcept {
  return impl_->max_workers();
}

shutdown_report blocking_pool::shutdown(caf::timespan deadline) {
  if (deadline < caf::timespan::zero())
    raise(make_error(errc::invalid_argument,
                     "blocking_pool::shutdown: negative deadline"));
  if (deadline > caf::timespan::zero()) {
    if (this_thread_must_not_block())
      raise(make_error(errc::would_deadlock,
                       "blocking_pool::shutdown with a deadline called on "
                       "thread '"
                         + this_thread_name() + "', which must never block ("
                         + "a scheduler thread or an event loop): use "
                           "shutdown(0s), or destroy the pool (neither "
                           "waits there)"));
    if (internal::current_self_wait_guard() == impl_.get())
      raise(make_error(errc::would_deadlock,
                       "blocking_pool::shutdown with a deadline called "
                       "inside a job of pool '"
                         + impl_->name() + "': it would wait for itself; "
                         + "shut it down from another thread, or destroy "
                           "it (which does not wait there)"));
  }
  // Keeps the pool alive if a continuation run below destroys this object.
  auto impl = impl_;
  shutdown_report report;
  auto start = internal::steady_clock::now();
  impl->begin_shutdown(report);
  impl->finish_shutdown(internal::saturating_add(start, deadline), report);
  report.total = internal::steady_clock::now() - start;
  return report;
}

} // namespace weave
