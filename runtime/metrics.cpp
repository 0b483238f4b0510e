#include "runtime/metrics.hpp"

#include <algorithm>
#include <limits>
#include <mutex>

#include "runtime/internal/blocker_set.hpp"
#include "runtime/internal/blocking_detector.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/internal/loop_impl.hpp"
#include "runtime/internal/pool_impl.hpp"
#include "runtime/runtime.hpp"
#include "runtime/thread_census.hpp"

namespace weave {

// -- duration_histogram -------------------------------------------------------

uint64_t duration_histogram::count() const noexcept {
  uint64_t n = 0;
  for (auto x : buckets)
    n += x;
  return n;
}

uint64_t duration_histogram::quantile_bound_ns(double q) const noexcept {
  auto n = count();
  if (n == 0)
    return 0;
  q = std::min(1.0, std::max(q, 0.0));
  // The rank of the quantile, 1-based, at least the first value.
  auto rank = std::max<uint64_t>(1, static_cast<uint64_t>(q * n + 0.5));
  uint64_t seen = 0;
  for (size_t i = 0; i < finite_buckets; ++i) {
    seen += buckets[i];
    if (seen >= rank)
      return upper_bound_ns(i);
  }
  return std::numeric_limits<uint64_t>::max();
}

duration_histogram&
duration_histogram::operator+=(const duration_histogram& other) noexcept {
  for (size_t i = 0; i < bucket_count; ++i)
    buckets[i] += other.buckets[i];
  sum_ns += other.sum_ns;
  return *this;
}

double busy_ratio(const pool_metrics& later,
                  const pool_metrics& earlier) noexcept {
  if (later.age_ns <= earlier.age_ns || later.max_workers == 0
      || later.run_time.sum_ns < earlier.run_time.sum_ns)
    return 0;
  auto busy = static_cast<double>(later.run_time.sum_ns
                                  - earlier.run_time.sum_ns);
  auto capacity = static_cast<double>(later.age_ns - earlier.age_ns)
                  * static_cast<double>(later.max_workers);
  return std::min(1.0, busy / capacity);
}

// -- runtime::metrics ---------------------------------------------------------

metrics_snapshot runtime::metrics() const {
  metrics_snapshot out;
  // One lock for the list; each component then reads its own counters.
  // The references are dropped after the registry's lock is released.
  for (auto& c : components_->live())
    c->collect_metrics(out);
  if (detector_) {
    detector_->metrics().add_to(out);
    out.threads.scheduler = detector_->metrics().size();
    out.slow_handlers = detector_->reports();
  }
  for (auto& p : out.pools)
    out.threads.pool_workers += p.threads;
  for (auto& l : out.loops)
    if (l.own_thread && !l.ended)
      ++out.threads.loops;
  out.threads.running = thread_census::running();
  out.threads.started = thread_census::started();
  out.threads.ended = thread_census::ended();
  out.threads.late_results_dropped = thread_census::late_results_dropped();
  return out;
}

namespace internal {

// -- the components' parts ----------------------------------------------------

void pool_impl::collect_metrics(metrics_snapshot& out) const {
  auto s = stats();
  pool_metrics m;
  m.name = name_;
  m.max_workers = s.max_workers;
  m.workers = s.workers;
  m.busy = s.busy;
  m.queued = s.queued;
  m.completed = s.completed;
  m.failed = s.failed;
  m.stopped = s.stopped;
  m.cancelled = s.cancelled;
  m.quarantined = s.quarantined;
  m.quarantined_total = s.quarantined_total;
  {
    std::unique_lock<std::mutex> guard{live_mtx_};
    m.threads = live_;
  }
  metrics_.add_to(m, slots_used_.load(std::memory_order_acquire));
  if (m.age_ns > 0)
    m.busy_ratio = std::min(
      1.0, static_cast<double>(m.run_time.sum_ns)
             / (static_cast<double>(m.age_ns)
                * static_cast<double>(max_workers_)));
  out.pools.push_back(std::move(m));
}

void loop_impl::collect_metrics(metrics_snapshot& out) const {
  auto s = stats();
  loop_metrics m;
  m.name = name_;
  m.own_thread = where_ == loop::own_thread;
  metrics_.add_to(m);
  m.submitted = s.submitted;
  m.posted = s.posted;
  m.post_failures = s.post_failures;
  m.ended = ended();
  out.loops.push_back(std::move(m));
}

void blocker_set::collect_metrics(metrics_snapshot& out) const {
  std::unique_lock<std::mutex> guard{mtx_};
  out.threads.blockers += live_;
}

} // namespace internal

} // namespace weave
