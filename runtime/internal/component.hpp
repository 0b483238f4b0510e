#pragma once

// Internal: something the runtime must stop at shutdown (a pool, a loop, a
// channel, the set of blockers, the deadline timer). The runtime keeps weak
// references; each component stops itself when its owner destroys it, and
// the runtime stops the rest in phase order.
//
// Registration is atomic with shutdown: `component_registry::close()` (the
// first thing shutdown does) and `add()` take the same lock, so a component
// is either in the list that shutdown stops, or refused (its constructor
// throws `shut_down`). Nothing registered can be missed by every phase.
//
// Locking: the registry's lock guards the list only. No user code runs under
// it: components are never destroyed while it is held (the last reference
// to an expired or filtered-out component is dropped after unlocking).

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "caf/fwd.hpp"

#include "runtime/internal/job.hpp"
#include "runtime/shutdown_report.hpp"

namespace weave {
struct metrics_snapshot;
} // namespace weave

namespace weave::internal {

enum class shutdown_phase { loops, channels, pools, blockers };

class component {
public:
  virtual ~component() = default;

  virtual shutdown_phase phase() const noexcept = 0;

  /// Stops accepting work and answers queued work with `shut_down`.
  virtual void begin_shutdown(shutdown_report& report) = 0;

  /// Waits for running work until `deadline`; counts what is abandoned.
  /// May be called more than once (by its owner, then by the runtime):
  /// later calls count what is still left behind.
  virtual void finish_shutdown(steady_clock::time_point deadline,
                               shutdown_report& report)
    = 0;

  /// For the runtime's shutdown, which calls it for every component of a
  /// phase before any of that phase's `finish_shutdown`: waits for running
  /// work until `deadline`, answers what is left and counts it into
  /// `report`. A component whose last steps may take long past the
  /// deadline (stopping processes and reaping them, joining a client
  /// actor's thread) leaves them to `finish_shutdown` and returns true; so
  /// every component's counts are in the report before any component's
  /// slow steps begin, and a caller that stops waiting for the shutdown at
  /// its deadline plus margin still has them all. By default the whole
  /// `finish_shutdown` runs here, and false says nothing is left.
  virtual bool settle_jobs(steady_clock::time_point deadline,
                           shutdown_report& report) {
    finish_shutdown(deadline, report);
    return false;
  }

  /// Lets go of every actor the component still references, once user
  /// actors had their time and before the actor system is destroyed (a
  /// reference released after that would touch a destroyed system).
  virtual void release_actors() noexcept {
    // nop by default
  }

  /// How many of the component's threads (CAF detached actors) are given
  /// up and may never end, such as a lookup stuck in getaddrinfo: the
  /// shutdown does not wait for these (it counts them among the abandoned
  /// threads). Called on the shutdown thread, after `begin_shutdown`.
  virtual size_t given_up_threads() const noexcept {
    return 0;
  }

  /// Adds the component's numbers to a metrics snapshot (metrics.hpp);
  /// called on any thread, concurrently with the component's work.
  virtual void collect_metrics(metrics_snapshot&) const {
    // nop by default
  }
};

using component_ptr = std::shared_ptr<component>;

/// The runtime's list of live components.
class component_registry {
public:
  /// Adds `c`, after running `start` (if any) under the registry's lock, so
  /// that a started component is always one shutdown will stop. False (and
  /// `start` not run) once `close()` was called.
  bool add(const component_ptr& c,
           const std::function<void()>& start = nullptr) {
    std::vector<std::weak_ptr<component>> expired;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      if (closed_)
        return false;
      if (start)
        start();
      // Forget components whose owners are gone, but only when the list has
      // doubled since the last sweep: amortized O(1) per add.
      if (items_.size() >= 2 * live_after_sweep_ + sweep_floor) {
        auto live = std::partition(items_.begin(), items_.end(),
                                   [](auto& x) { return !x.expired(); });
        expired.assign(std::make_move_iterator(live),
                       std::make_move_iterator(items_.end()));
        items_.erase(live, items_.end());
        live_after_sweep_ = items_.size();
      }
      items_.emplace_back(c);
    }
    return true;
  }

  /// Refuses every later `add` and returns the live components, in the
  /// order they were added.
  std::vector<component_ptr> close() {
    std::vector<component_ptr> result;
    std::unique_lock<std::mutex> guard{mtx_};
    closed_ = true;
    for (auto& x : items_)
      if (auto ptr = x.lock())
        result.emplace_back(std::move(ptr));
    return result;
  }

  bool closed() const {
    std::unique_lock<std::mutex> guard{mtx_};
    return closed_;
  }

  /// The live components, in the order they were added (also after
  /// `close()`): one lock per call, for metrics snapshots.
  std::vector<component_ptr> live() const {
    std::vector<component_ptr> result;
    std::unique_lock<std::mutex> guard{mtx_};
    result.reserve(items_.size());
    for (auto& x : items_)
      if (auto ptr = x.lock())
        result.emplace_back(std::move(ptr));
    return result;
  }

private:
  /// Below this many entries the list is never swept.
  static constexpr size_t sweep_floor = 16;

  mutable std::mutex mtx_;
  std::vector<std::weak_ptr<component>> items_;
  size_t live_after_sweep_ = 0;
  bool closed_ = false;
};

} // namespace weave::internal
