#pragma once

// Internal: counts the blockers (spawn_blocker) that are still running, so
// that shutdown can wait for them until its deadline.

#include <condition_variable>
#include <mutex>

#include "runtime/internal/component.hpp"

namespace weave::internal {

class blocker_set : public component {
public:
  shutdown_phase phase() const noexcept override {
    return shutdown_phase::blockers;
  }

  /// Registers a new blocker; false once shutdown has begun.
  bool enter() {
    std::unique_lock<std::mutex> guard{mtx_};
    if (closed_)
      return false;
    ++live_;
    ++started_;
    return true;
  }

  void leave() {
    std::unique_lock<std::mutex> guard{mtx_};
    if (--live_ == 0)
      cv_.notify_all();
  }

  void begin_shutdown(shutdown_report&) override {
    std::unique_lock<std::mutex> guard{mtx_};
    closed_ = true;
  }

  void finish_shutdown(steady_clock::time_point deadline,
                       shutdown_report& report) override {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait_until(guard, deadline, [this] { return live_ == 0; });
    report.threads_joined += started_ - live_;
    report.threads_abandoned += live_;
    report.jobs_abandoned += live_;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  size_t live_ = 0;
  size_t started_ = 0;
  bool closed_ = false;
};

} // namespace weave::internal
