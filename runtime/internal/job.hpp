#pragma once

// Internal: the unit of work every weave executor moves around.
//
// `job` is the executor's view of a piece of work: its state machine, its
// deadline, the intrusive link of a queue, the executor it is queued on, and
// the failure its function threw. It is an interface without a reference
// count of its own: a job is always part of a larger object that has one,
// and `job_ptr` (`caf::intrusive_ptr<job>`) forwards to it. A submitted
// function is a `function_job`, which is a future's shared state and a job in
// one allocation (the job's reference count is the state's); a job with no
// future (an offloaded function answering an actor, a posted function) is a
// `counted_job`, which brings its own count.
//
// A job moves through states exactly once:
//
//   queued --try_start()--> running --(run returns)--> finished
//   queued --try_drop()---> dropped  (cancelled, timed out, shut down)
//
// `cancel_with()` passes through a short `dropping` state while it counts the
// drop on the executor (its `job_owner`), so a pool's statistics include a
// cancelled job before its caller hears of it; an executor that shuts down
// waits for `dropping` to end before the counter may go away.
//
// Whoever wins the compare-and-swap out of `queued` owns the outcome: the
// executor runs it, or the canceller delivers the error. That CAS is what
// makes "every submitted job ends exactly once" hold when a cancel, a timeout
// and a worker race for the same job.
//
// Thread-safety: the state machine is lock-free and may be driven from any
// thread; the plain fields belong to the executor that queued the job.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "caf/error.hpp"
#include "caf/intrusive_ptr.hpp"
#include "caf/ref_counted.hpp"

#include "runtime/error.hpp"
#include "runtime/internal/callback.hpp"

namespace weave::internal {

using steady_clock = std::chrono::steady_clock;

class job;

/// A job as the thread running it describes it in a thread dump: its kind
/// ("offload", "submit", ...) and its label, if it was given one (see
/// labeled.hpp). The label is read only before the job runs.
struct job_description {
  const char* kind = "job";
  std::string_view label;
};

/// Marks the thread running `j`, if any, as asked to stop with `cause`, for
/// thread dumps (thread_activity.hpp).
void note_stop(const job& j, errc cause) noexcept;

/// An executor that jobs are queued on: a job knows its owner (for
/// self-deadlock detection) and counts its drop there.
struct job_owner {
  /// Jobs dropped before they ran (cancelled, timed out, shut down).
  std::atomic<size_t> dropped{0};

  /// Asks `j`, which runs on one of this executor's workers, to stop (see
  /// `job::stop_running`). An executor that bounds how long a stopped job
  /// may keep running (a pool's grace period) overrides this.
  virtual bool stop_running(job& j, errc cause) noexcept;

protected:
  virtual ~job_owner() = default;
};

class job {
public:
  enum class state : uint8_t { queued, running, finished, dropping, dropped };

  job() = default;
  job(const job&) = delete;
  job& operator=(const job&) = delete;

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

  /// True while the job waits in its owner's queue.
  bool queued_on_owner() const noexcept {
    return owner != nullptr && current_state() == state::queued;
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

  /// Delivers `reason` as the job's outcome after a successful `try_drop()`
  /// (or instead of a running job's own outcome, when an executor abandons
  /// it). False if an outcome was already delivered.
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

  /// True while the runtime's timer should keep this job's entry (see
  /// deadline_timer): while the job is queued, by default.
  virtual bool timer_entry_live() const noexcept {
    return current_state() == state::queued;
  }

  /// True if the function takes a `stop_token` (so a stop can reach it
  /// while it runs).
  virtual bool takes_stop_token() const noexcept {
    return false;
  }

  /// Requests the stop of the function's token (first cause wins); false
  /// if the function takes no token. The function then ends with the
  /// stop's cause as its outcome.
  virtual bool request_stop(errc) noexcept {
    return false;
  }

  /// True once a stop was requested (for a job that has ended: its outcome
  /// is the stop's cause).
  virtual bool stopped() const noexcept {
    return false;
  }

  /// What a thread dump shows for the job (called before it runs).
  virtual job_description describe() const noexcept {
    return {};
  }

  /// Asks the job to stop if it is running now, through its owner (which
  /// may bound how long it keeps running; a job without an owner, such as
  /// a blocker, on its own thread, is simply asked). False if it is not
  /// running or takes no token. The executor stays valid during the call: its worker
  /// waits for it (`wait_while_stopping`) before it lets go of the job.
  bool stop_running(errc cause) noexcept {
    stoppers_.fetch_add(1, std::memory_order_seq_cst);
    bool result = false;
    if (state_.load(std::memory_order_seq_cst) == state::running)
      result = owner != nullptr ? owner->stop_running(*this, cause)
                                : request_stop(cause);
    if (result)
      note_stop(*this, cause); // before its runner may let go of it
    stoppers_.fetch_sub(1, std::memory_order_seq_cst);
    return result;
  }

  /// Waits out a concurrent `stop_running` that saw the job running. Called
  /// by `run()` after `mark_finished()` and before it reads the stop's
  /// cause (so a stop that `stop_running` reported as requested is the
  /// outcome), and by the worker before it lets go of the job.
  void wait_while_stopping() const noexcept {
    while (stoppers_.load(std::memory_order_seq_cst) != 0)
      std::this_thread::yield();
  }

  /// Latest time the job may start; `max()` for none.
  steady_clock::time_point deadline = steady_clock::time_point::max();

  /// When the job was queued (a metrics_clock reading), for the queue-wait
  /// and loop-lag histograms (metrics.hpp).
  uint64_t queued_at = 0;

  /// Intrusive link used by job_queue.
  job* next = nullptr;

  /// Set by `run()` when the user's function threw (`job_failed`).
  caf::error failure;

  /// The executor the job was queued on; it stays valid while the job is
  /// queued there (see `wait_while_dropping`).
  job_owner* owner = nullptr;

protected:
  virtual ~job() = default;

  void mark_finished() noexcept {
    // Sequentially consistent: either a stopper sees the job finished, or
    // the worker sees the stopper (see stop_running).
    state_.store(state::finished, std::memory_order_seq_cst);
  }

  /// The reference count of the object the job is part of.
  virtual void ref_job() const noexcept = 0;
  virtual void deref_job() const noexcept = 0;

private:
  friend void intrusive_ptr_add_ref(const job* j) noexcept {
    j->ref_job();
  }

  friend void intrusive_ptr_release(const job* j) noexcept {
    j->deref_job();
  }

  std::atomic<state> state_{state::queued};
  std::atomic<int> stoppers_{0};
};

inline bool job_owner::stop_running(job& j, errc cause) noexcept {
  return j.request_stop(cause);
}

using job_ptr = caf::intrusive_ptr<job>;

/// A job with a reference count of its own, for work that has no future
/// (its outcome goes to an actor, or nowhere).
class counted_job : public caf::ref_counted, public job {
protected:
  void ref_job() const noexcept final {
    ref();
  }

  void deref_job() const noexcept final {
    deref();
  }

private:
  // Both bases offer these; the most derived one is the unambiguous match.
  friend void intrusive_ptr_add_ref(const counted_job* j) noexcept {
    j->ref();
  }

  friend void intrusive_ptr_release(const counted_job* j) noexcept {
    j->deref();
  }
};

/// Implemented by a pool for its own worker threads: a worker about to wait
/// for a job still queued in its own pool asks first, because every worker
/// waiting for queued work would leave nobody to run it.
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
