#pragma once

// Internal: the writer's side of a `duration_histogram` (metrics.hpp).
//
// A `histogram_recorder` has ONE writer at a time (a pool worker's slot, a
// loop, a scheduler worker): it records with relaxed loads and stores, no
// read-modify-write, on cache lines no other thread writes. Successive
// writers (a slot reused by a fresh worker, a shared loop moving between
// scheduler threads) are ordered by whatever hands the work over (a mutex,
// an actor's mailbox). Readers (snapshots) load relaxed atomics and may
// see a record half done (its bucket and not yet its sum): the numbers
// settle as soon as the writer is done.

#include <atomic>
#include <cstdint>

#include "runtime/metrics.hpp"

namespace weave::internal {

/// Adds `n` to a counter that only the calling thread writes.
inline void bump(std::atomic<uint64_t>& x, uint64_t n = 1) noexcept {
  x.store(x.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

class histogram_recorder {
public:
  /// Records a duration (single writer, see the top of this file).
  void record(uint64_t ns) noexcept {
    bump(buckets_[duration_histogram::bucket_of(ns)]);
    bump(sum_ns_, ns);
  }

  /// Adds what was recorded to `out`.
  void add_to(duration_histogram& out) const noexcept {
    for (size_t i = 0; i < duration_histogram::bucket_count; ++i)
      out.buckets[i] += buckets_[i].load(std::memory_order_relaxed);
    out.sum_ns += sum_ns_.load(std::memory_order_relaxed);
  }

private:
  std::atomic<uint64_t> buckets_[duration_histogram::bucket_count] = {};
  std::atomic<uint64_t> sum_ns_{0};
};

} // namespace weave::internal
