#pragma once

// Internal: a loop's lag histogram. Its writer is the loop's actor, which
// runs one task at a time (on its own thread, or on scheduler threads one
// turn after another, ordered by CAF's mailbox): a single writer.

#include <cstdint>

#include "runtime/internal/histogram_metrics.hpp"
#include "runtime/internal/metrics_clock.hpp"
#include "runtime/metrics.hpp"

namespace weave::internal {

class loop_recorder {
public:
  /// A task sent at reading `sent_at` starts now.
  void task_starts(uint64_t sent_at) noexcept {
    lag_.record(metrics_clock::elapsed_ns(sent_at, metrics_clock::now()));
  }

  void add_to(loop_metrics& out) const noexcept {
    lag_.add_to(out.lag);
  }

private:
  histogram_recorder lag_;
};

} // namespace weave::internal
