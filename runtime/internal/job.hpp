#pragma once

// Internal: the unit of work every weave executor moves around.
//
// A job is reference-counted (CAF's `ref_counted`, so `caf::intrusive_ptr`
// works) and moves through states exactly once:
//
//   queued --try_start()--> running --(run returns)--> finished
//   queued --try_drop()---> dropped  (cancelled, timed out, shut down)
//
// `cancel_with()` passes through a short `dropping` state while it counts the
// drop on the executor (its `job_owner`) (so a pool's statistics include a cancelled
// job before its caller hears of it); an executor that shuts down waits for
// `dropping` to end before the counter may go away.
//
// Whoever wins the compare-and-swap out of `queued` owns the outcome: the
// executor runs it, or the canceller delivers the error. That CAS is what
// makes "every submitted job ends exactly once" (promise 1) hold when a
// cancel, a timeout and a worker race for the same job.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <utility>

#include "caf/error.hpp"
#include "caf/intrusive_ptr.hpp"
#include "caf/ref_counted.hpp"

namespace weave::internal {

using steady_clock = std::chrono::steady_clock;

/// An executor that jobs are queued on: a job knows its owner (for
/// self-deadlock detection) and counts its drop there.
struct job_owner {
  /// Jobs dropped before they ran (cancelled, timed out, shut down).
  std::atomic<size_t> dropped{0};
};

class job : public caf::ref_counted {
public:
  enum class state : uint8_t { queued, running, finished, dropping, dropped };

  /// Claims the job for execution. False if it was dropped meanwhile.
  bool try_start() noexcept {
    auto expected = state::queued;
    return state_.compare_exchange_strong(expected, state::running,
                                          std::memory_order_acq_rel);
  }

  /// Claims the job for dropping. False if it already started or ended.
  bool try_drop() noexcept {
    auto expected = state::queued;
    return state_.compare_exchange_strong(expected, state::dropped,
                                          std::memory_order_acq_rel);
  }

  state current_state() const noexcept {
    return state_.load(std::memory_order_acquire);
  }

  /// Runs the job after a successful `try_start()`. Returns false if the
  /// user's function threw (for statistics). Executors that keep counters
  /// call `deliver()` after counting, so that whoever sees the outcome also
  /// sees the counters include it; jobs that publish in `run()` need not
  /// override `deliver()`.
  virtual bool run() noexcept = 0;

  /// Publishes the outcome staged by `run()`.
  virtual void deliver() noexcept {
    // nop
  }

  /// Delivers `reason` as the job's outcome after a successful `try_drop()`.
  /// False if an outcome was already delivered (a promise set directly).
  virtual bool drop(caf::error reason) noexcept = 0;

  /// Drops the job with `reason` if it has not started and no outcome was
  /// delivered yet, counting it on its owner first. True if `reason`
  /// became the job's outcome.
  bool cancel_with(caf::error reason) noexcept {
    auto expected = state::queued;
    if (!state_.compare_exchange_strong(expected, state::dropping,
                                        std::memory_order_acq_rel))
      return false;
    if (owner != nullptr)
      owner->dropped.fetch_add(1, std::memory_order_relaxed);
    state_.store(state::dropped, std::memory_order_release);
    return drop(std::move(reason));
  }

  /// Waits out a concurrent `cancel_with()` that is counting the drop.
  void wait_while_dropping() const noexcept {
    while (state_.load(std::memory_order_acquire) == state::dropping)
      std::this_thread::yield();
  }

  /// Latest time the job may start; `max()` for none.
  steady_clock::time_point deadline = steady_clock::time_point::max();

  /// Intrusive link used by job_queue.
  job* next = nullptr;

  /// Set by `run()` when the user's function threw (`job_failed`).
  caf::error failure;

  /// The executor the job was queued on; it stays valid while the job is
  /// queued there (see `wait_while_dropping`).
  job_owner* owner = nullptr;

protected:
  void mark_finished() noexcept {
    state_.store(state::finished, std::memory_order_release);
  }

private:
  std::atomic<state> state_{state::queued};
};

using job_ptr = caf::intrusive_ptr<job>;

/// A move-only `void()` callable (std::function needs copyable targets).
class callback {
public:
  callback() = default;

  template <class F>
  explicit callback(F f) : impl_(new model<F>(std::move(f))) {
    // nop
  }

  explicit operator bool() const noexcept {
    return impl_ != nullptr;
  }

  void operator()() {
    impl_->call();
  }

private:
  struct concept_t {
    virtual ~concept_t() = default;
    virtual void call() = 0;
  };

  template <class F>
  struct model final : concept_t {
    explicit model(F f) : fn(std::move(f)) {
    }
    void call() override {
      fn();
    }
    F fn;
  };

  std::unique_ptr<concept_t> impl_;
};

/// Implemented by a pool for its own worker threads: a worker about to wait
/// for a job still queued in its own pool asks first (tutorial §8.3).
class self_wait_guard {
public:
  virtual ~self_wait_guard() = default;
  /// Throws `would_deadlock` if every worker of the pool would then be
  /// waiting for queued work; otherwise records the wait and returns true
  /// (false: `awaited` is not this pool's job, nothing recorded).
  virtual bool begin_wait(const job& awaited) = 0;
  virtual void end_wait() noexcept = 0;
};

/// The guard of the pool whose worker is the calling thread, or null.
self_wait_guard* current_self_wait_guard() noexcept;
void set_current_self_wait_guard(self_wait_guard* guard) noexcept;

/// Tells the CPU the caller is spinning (a `pause` on x86).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/// The message of an exception in flight, for `job_failed` errors.
std::string current_exception_message();

/// The error for an exception in flight: a `weave::exception` keeps its own
/// error; anything else becomes `job_failed` carrying its message.
caf::error current_exception_error();

} // namespace weave::internal
