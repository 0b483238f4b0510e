#include "runtime/blocking_pool.hpp"

#include <algorithm>
#include <thread>

#include "caf/actor_system.hpp"
#include "caf/blocking_actor.hpp"
#include "caf/spawn_options.hpp"

#include "runtime/internal/pool_impl.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/runtime.hpp"
#include "runtime/this_thread.hpp"

namespace weave {

namespace internal {

pool_impl::pool_impl(caf::actor_system& sys, size_t max_workers,
                     std::string name)
  : sys_(sys), max_workers_(max_workers), name_(std::move(name)),
    cores_(std::max(1u, std::thread::hardware_concurrency())),
    running_(new std::atomic<job*>[max_workers]) {
  for (size_t i = 0; i < max_workers; ++i)
    running_[i].store(nullptr);
}

void pool_impl::enqueue(job_ptr j) {
  j->owner = this;
  bool want_worker = false;
  if (!queue_.push(j, want_worker)) {
    j->cancel_with(make_error(errc::shut_down,
                              "pool '" + name_ + "' is shut down"));
    return;
  }
  if (want_worker)
    maybe_spawn_worker();
}

void pool_impl::maybe_spawn_worker() {
  auto n = spawned_.load(std::memory_order_relaxed);
  do {
    if (n >= max_workers_)
      return;
  } while (!spawned_.compare_exchange_weak(n, n + 1));
  {
    std::unique_lock<std::mutex> guard{live_mtx_};
    if (finished_) {
      spawned_.fetch_sub(1);
      return;
    }
    ++live_;
  }
  auto self = shared_from_this();
  sys_.spawn<caf::hidden>(
    [self, n](caf::blocking_actor*) { self->worker_main(n); });
}

void pool_impl::worker_main(size_t index) {
  set_this_thread_name(name_ + "_" + std::to_string(index));
  set_current_self_wait_guard(this);
  for (;;) {
    auto j = queue_.pop(busy_.load(std::memory_order_relaxed) + 1 < cores_);
    if (!j)
      break;
    if (j->deadline != steady_clock::time_point::max()
        && steady_clock::now() > j->deadline) {
      // Too late to start: the caller has already been told (timeout).
      j->cancel_with(make_error(errc::timeout, "deadline passed while queued"));
      continue;
    }
    if (!j->try_start()) {
      // Cancelled while queued: the canceller counts it and tells the caller;
      // this worker (and so the pool) outlives the counting.
      j->wait_while_dropping();
      continue;
    }
    busy_.fetch_add(1, std::memory_order_relaxed);
    // The slot holds a reference of its own; whoever empties it releases it.
    intrusive_ptr_add_ref(j.get());
    running_[index].store(j.get(), std::memory_order_release);
    auto ok = j->run();
    busy_.fetch_sub(1, std::memory_order_relaxed);
    (ok ? completed_ : failed_).fetch_add(1, std::memory_order_relaxed);
    if (auto mine = running_[index].exchange(nullptr, std::memory_order_acq_rel)) {
      intrusive_ptr_release(mine);
      j->deliver();
    } else {
      census_late_result_dropped(); // shutdown abandoned it at the deadline
    }
  }
  std::unique_lock<std::mutex> guard{live_mtx_};
  if (--live_ == 0)
    live_cv_.notify_all();
}

void pool_impl::begin_shutdown(shutdown_report& report) {
  for (auto& j : queue_.close()) {
    if (j->cancel_with(
          make_error(errc::shut_down, "pool '" + name_ + "' shut down")))
      ++report.jobs_cancelled;
    else
      j->wait_while_dropping(); // a canceller still counts on `dropped`
  }
}

void pool_impl::finish_shutdown(steady_clock::time_point deadline,
                                shutdown_report& report) {
  std::unique_lock<std::mutex> guard{live_mtx_};
  if (finished_)
    return;
  live_cv_.wait_until(guard, deadline, [this] { return live_ == 0; });
  finished_ = true;
  // Jobs still running now are abandoned: their callers hear `shut_down`
  // at once, and the late result will be dropped (and counted).
  for (size_t i = 0; i < max_workers_; ++i)
    if (auto j = running_[i].exchange(nullptr, std::memory_order_acq_rel)) {
      j->drop(make_error(errc::shut_down, "pool '" + name_
                                            + "': still running at the "
                                              "shutdown deadline, abandoned"));
      intrusive_ptr_release(j);
      ++report.jobs_abandoned;
    }
  report.threads_joined += spawned_.load() - live_;
  report.threads_abandoned += live_;
  report.jobs_completed += completed_.load() + failed_.load();
}

bool pool_impl::begin_wait(const job& awaited) {
  if (awaited.owner != this)
    return false;
  auto waiting = self_waiters_.fetch_add(1) + 1;
  if (waiting >= max_workers_) {
    self_waiters_.fetch_sub(1);
    raise(make_error(errc::would_deadlock,
                     "a worker of pool '" + name_ + "' waits for a job queued "
                       + "in the same pool while every other worker does "
                         "too: nobody would run it (tutorial §8.3); use a "
                         "second pool, or then() instead of get()"));
  }
  // Fewer workers than allowed may exist yet: start one for the queued job.
  maybe_spawn_worker();
  return true;
}

void pool_impl::end_wait() noexcept {
  self_waiters_.fetch_sub(1);
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
  return s;
}

} // namespace internal

blocking_pool::blocking_pool(runtime& rt, size_t max_workers, std::string name) {
  if (max_workers == 0 || max_workers > max_pool_size)
    raise(make_error(errc::invalid_argument,
                     "blocking_pool '" + name + "': max_workers is "
                       + std::to_string(max_workers) + ", allowed 1.."
                       + std::to_string(max_pool_size)));
  impl_ = std::make_shared<internal::pool_impl>(rt.system(), max_workers,
                                                std::move(name));
  shutdown_deadline_ = rt.config().shutdown_deadline();
  rt.register_component(impl_);
}

blocking_pool::~blocking_pool() {
  // The runtime may already have shut the pool down; that is a no-op here.
  shutdown_report ignored;
  impl_->begin_shutdown(ignored);
  // Destroyed by one of its own jobs: waiting for the workers would include
  // waiting for this one; they end once their current jobs return.
  if (internal::current_self_wait_guard() == impl_.get())
    return;
  impl_->finish_shutdown(internal::steady_clock::now()
                           + shutdown_deadline_,
                         ignored);
}

void blocking_pool::enqueue(internal::job_ptr j) {
  impl_->enqueue(std::move(j));
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
  shutdown_report report;
  auto start = internal::steady_clock::now();
  impl_->begin_shutdown(report);
  impl_->finish_shutdown(start + deadline, report);
  report.total = internal::steady_clock::now() - start;
  return report;
}

} // namespace weave
