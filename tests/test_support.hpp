#pragma once

// Shared helpers for weave's doctest suites: a latch, a watchdog, and a
// helper that runs a block inside an actor and waits for its verdict.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace weave::test {

using namespace std::chrono_literals;

/// How long any single test case may run before the watchdog aborts it,
/// unless it declares more with `* doctest::timeout(seconds)`.
constexpr auto default_watchdog_limit = std::chrono::seconds{60};

/// How long a test waits for something that should happen "at once".
constexpr auto patience = std::chrono::seconds{10};

/// A deadline that a just-submitted task must start within, for a test that
/// then waits the deadline out on purpose (a task stopped at its deadline):
/// a task that starts after it never runs. Under sanitizers on a busy
/// machine a thread may take that long to wake up.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr auto start_window = std::chrono::milliseconds{2000};
#else
constexpr auto start_window = std::chrono::milliseconds{500};
#endif

/// C++17 has no std::latch.
class latch {
public:
  explicit latch(size_t count) : count_(count) {
  }

  void count_down(size_t n = 1) {
    std::unique_lock<std::mutex> guard{mtx_};
    count_ = n >= count_ ? 0 : count_ - n;
    if (count_ == 0)
      cv_.notify_all();
  }

  /// Waits until the count is zero; false if `limit` passed first.
  bool wait(std::chrono::milliseconds limit = patience) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, limit, [this] { return count_ == 0; });
  }

  bool ready() {
    std::unique_lock<std::mutex> guard{mtx_};
    return count_ == 0;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  size_t count_;
};

/// Aborts the process (with a message naming the test) if it is still alive
/// after `limit`; a hung test fails CI instead of stalling it.
class watchdog {
public:
  explicit watchdog(std::chrono::seconds limit = default_watchdog_limit);
  ~watchdog();

  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

/// Collects failures seen on threads other than the test's own (actor
/// handlers, pool workers, callbacks), where doctest's REQUIRE would abort
/// or race. The test thread checks `messages()` (or `CHECK(f.empty())`)
/// after it has waited for the other threads:
///
///     weave::test::failures bad;
///     ... on another thread: bad.check(x == 42, "x was not 42");
///     ... on the test thread, after a latch: CHECK(bad.messages() == "");
class failures {
public:
  /// Records `what` if `ok` is false; returns `ok`.
  bool check(bool ok, const std::string& what) {
    if (!ok) {
      std::unique_lock<std::mutex> guard{mtx_};
      items_.push_back(what);
    }
    return ok;
  }

  void add(const std::string& what) {
    check(false, what);
  }

  bool empty() {
    std::unique_lock<std::mutex> guard{mtx_};
    return items_.empty();
  }

  /// Every recorded failure, one per line ("" when none).
  std::string messages() {
    std::unique_lock<std::mutex> guard{mtx_};
    std::string out;
    for (auto& x : items_)
      out += x + "\n";
    return out;
  }

private:
  std::mutex mtx_;
  std::vector<std::string> items_;
};

/// Keeps a value at its maximum (e.g. the highest concurrency seen).
template <class Atomic, class T>
void raise_max(Atomic& target, T value) {
  auto cur = target.load();
  while (value > cur && !target.compare_exchange_weak(cur, value)) {
  }
}

/// Waits until `pred` holds, polling an exact condition that no message
/// announces (e.g. "a thread is blocked in put"); false after `limit`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = patience) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until)
      return false;
    std::this_thread::yield();
  }
  return true;
}

/// Runs `fn` when destroyed (unless moved from): an item or a handler
/// capture that reports its own destruction.
class on_destroy {
public:
  explicit on_destroy(std::function<void()> fn) : fn_(std::move(fn)) {
  }
  on_destroy(on_destroy&& other) noexcept : fn_(std::move(other.fn_)) {
    other.fn_ = nullptr;
  }
  on_destroy(const on_destroy&) = delete;
  ~on_destroy() {
    if (fn_)
      fn_();
  }

private:
  std::function<void()> fn_;
};

} // namespace weave::test
