#pragma once

// Internal: a blocking pool's metrics beyond its counters (pool_impl.hpp):
// per worker slot, the queue-wait and run-time histograms. A slot has one
// worker at a time (see pool_impl.hpp: a slot is reused only after its
// quarantined worker freed it, under the pool's lock), which is the
// histograms' single writer; a snapshot sums the slots.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "runtime/internal/histogram_metrics.hpp"
#include "runtime/internal/metrics_clock.hpp"
#include "runtime/metrics.hpp"

namespace weave::internal {

class pool_recorder {
public:
  explicit pool_recorder(size_t slots)
    : slots_(new slot[slots]), created_ns_(metrics_clock::steady_ns()) {
    // nop
  }

  /// A job queued at reading `queued_at` starts now on slot `index`;
  /// returns the reading of its start.
  uint64_t started(size_t index, uint64_t queued_at) noexcept {
    auto now = metrics_clock::now();
    slots_[index].queue_wait.record(metrics_clock::elapsed_ns(queued_at, now));
    return now;
  }

  /// The job that `started` at reading `start` on slot `index` ended now.
  void ended(size_t index, uint64_t start) noexcept {
    slots_[index].run_time.record(
      metrics_clock::elapsed_ns(start, metrics_clock::now()));
  }

  /// Adds the first `used` slots' histograms and the pool's age to `out`.
  void add_to(pool_metrics& out, size_t used) const noexcept {
    for (size_t i = 0; i < used; ++i) {
      slots_[i].queue_wait.add_to(out.queue_wait);
      slots_[i].run_time.add_to(out.run_time);
    }
    out.age_ns = metrics_clock::steady_ns() - created_ns_;
  }

private:
  struct alignas(64) slot {
    histogram_recorder queue_wait;
    histogram_recorder run_time;
  };

  std::unique_ptr<slot[]> slots_;
  const uint64_t created_ns_;
};

} // namespace weave::internal
