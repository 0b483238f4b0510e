#pragma once

// Internal: per scheduler worker counters, written by weave's scheduler
// policy (watched_policy.hpp) on the worker's own thread — each worker has
// its own cache line and is the only writer of its counters, except
// `slow_handlers`, which the blocking detector's watchdog thread alone
// increments. Owned by the blocking detector, so that they outlive the
// actor system (a snapshot may be taken while or after it is destroyed).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "runtime/internal/histogram_metrics.hpp"
#include "runtime/internal/metrics_clock.hpp"
#include "runtime/metrics.hpp"

namespace weave::internal {

class scheduler_recorder {
public:
  struct alignas(64) worker {
    std::atomic<uint64_t> resumes{0};
    std::atomic<uint64_t> busy_ns{0};
    std::atomic<uint64_t> parks{0};
    std::atomic<uint64_t> steals{0};
    std::atomic<uint64_t> slow_handlers{0};
    /// The TCP I/O thread's only: of `resumes`, the turns it ran without a
    /// message (io_unit.hpp, `run_direct`).
    std::atomic<uint64_t> direct{0};
    /// The TCP I/O thread's only: readiness it kept for a turn that stopped
    /// at its share (tcp_reactor.hpp, `yield_ready`).
    std::atomic<uint64_t> kept_readiness{0};

    /// A turn that began at `started_ns` (steady clock, the blocking
    /// detector's stamp, read in before_resume anyway) ends now: one clock
    /// read, after the turn, off the path of the messages it sent.
    void resume_ends(int64_t started_ns) noexcept {
      auto now = metrics_clock::steady_ns();
      bump(resumes);
      auto start = static_cast<uint64_t>(started_ns);
      if (now > start)
        bump(busy_ns, now - start);
    }
  };

  explicit scheduler_recorder(size_t workers)
    : size_(workers), workers_(new worker[workers]) {
    // nop
  }

  worker* at(size_t index) noexcept {
    return index < size_ ? &workers_[index] : nullptr;
  }

  /// The TCP I/O thread's counters (its turns: actors/internal/io_unit.hpp;
  /// `parks` and `steals` stay zero).
  worker* io() noexcept {
    return &io_;
  }

  size_t size() const noexcept {
    return size_;
  }

  /// Appends one entry per worker to `out`.
  void add_to(metrics_snapshot& out) const {
    for (size_t i = 0; i < size_; ++i) {
      auto& w = workers_[i];
      scheduler_worker_metrics m;
      m.index = i;
      m.resumes = w.resumes.load(std::memory_order_relaxed);
      m.busy_ns = w.busy_ns.load(std::memory_order_relaxed);
      m.parks = w.parks.load(std::memory_order_relaxed);
      m.steals = w.steals.load(std::memory_order_relaxed);
      m.slow_handlers = w.slow_handlers.load(std::memory_order_relaxed);
      out.scheduler.push_back(m);
    }
    out.tcp_io.turns = io_.resumes.load(std::memory_order_relaxed);
    out.tcp_io.busy_ns = io_.busy_ns.load(std::memory_order_relaxed);
    out.tcp_io.slow_handlers = io_.slow_handlers.load(std::memory_order_relaxed);
    out.tcp_io.direct_turns = io_.direct.load(std::memory_order_relaxed);
    out.tcp_io.kept_readiness
      = io_.kept_readiness.load(std::memory_order_relaxed);
  }

private:
  const size_t size_;
  std::unique_ptr<worker[]> workers_;
  worker io_;
};

} // namespace weave::internal
