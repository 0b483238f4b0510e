#pragma once

// Internal: the scheduler workers that are parked, for the scheduler
// policy (watched_policy.hpp) to wake one in O(1).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace weave::internal {

/// The scheduler workers that are parked (asleep on their condition
/// variable), for waking one in O(1). Thread-safe: every operation holds one
/// mutex for a few instructions and runs no user code while it does.
class parked_workers {
public:
  static constexpr size_t none = static_cast<size_t>(-1);

  /// What `remove` found.
  struct removal {
    /// The worker was still parked (no one had woken it).
    bool was_parked;
    /// Woken by `pop(true)`: the waker counted it as searching.
    bool token;
  };

  /// Worker `id` parks; it is not parked yet.
  void push(size_t id);

  /// Takes the most recently parked worker (its caches are the warmest),
  /// handing it `token`; `none` if no worker is parked.
  size_t pop(bool token);

  /// Worker `id` unparks itself; once per `push`.
  removal remove(size_t id);

  /// How many workers are parked (a sequentially consistent read).
  size_t size() const noexcept {
    return count_.load();
  }

private:
  std::mutex mtx_;
  std::vector<size_t> stack_;
  std::vector<size_t> pos_;     // index of each worker in stack_, or none
  std::vector<uint8_t> token_;  // set by pop, read by remove
  std::atomic<size_t> count_{0};
};

} // namespace weave::internal
