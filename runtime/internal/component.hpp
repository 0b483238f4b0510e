#pragma once

// Internal: something the runtime must stop at shutdown (a pool, a loop, a
// channel, the set of blockers). The runtime keeps weak references; each
// component stops itself when its owner destroys it, and the runtime stops
// the rest in phase order.

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/internal/job.hpp"
#include "runtime/shutdown_report.hpp"

namespace weave::internal {

enum class shutdown_phase { loops, channels, pools, blockers };

class component {
public:
  virtual ~component() = default;

  virtual shutdown_phase phase() const noexcept = 0;

  /// Stops accepting work and answers queued work with `shut_down`.
  virtual void begin_shutdown(shutdown_report& report) = 0;

  /// Waits for running work until `deadline`; counts what is abandoned.
  virtual void finish_shutdown(steady_clock::time_point deadline,
                               shutdown_report& report)
    = 0;
};

/// The runtime's list of live components.
class component_registry {
public:
  void add(std::weak_ptr<component> c) {
    std::unique_lock<std::mutex> guard{mtx_};
    // Forget components whose owners are gone, but only when the list has
    // doubled since the last sweep: amortized O(1) per add.
    if (items_.size() >= 2 * live_after_sweep_ + 16) {
      items_.erase(std::remove_if(items_.begin(), items_.end(),
                                  [](auto& x) { return x.expired(); }),
                   items_.end());
      live_after_sweep_ = items_.size();
    }
    items_.emplace_back(std::move(c));
  }

  std::vector<std::shared_ptr<component>> snapshot(shutdown_phase p) {
    std::vector<std::shared_ptr<component>> result;
    std::unique_lock<std::mutex> guard{mtx_};
    for (auto& x : items_)
      if (auto ptr = x.lock(); ptr && ptr->phase() == p)
        result.emplace_back(std::move(ptr));
    return result;
  }

private:
  std::mutex mtx_;
  std::vector<std::weak_ptr<component>> items_;
  size_t live_after_sweep_ = 0;
};

} // namespace weave::internal
