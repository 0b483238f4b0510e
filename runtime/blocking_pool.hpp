#pragma once

/// `blocking_pool`: a fixed-size pool of threads for blocking calls, the C++
/// answer to `ThreadPoolExecutor(max_workers=N)`.
///
/// A pool is up to N detached worker actors (CAF blocking actors, each on its
/// own thread) pulling jobs from one shared queue, so a slow job never holds
/// back a queued job while another worker is idle. Jobs start in the order
/// their submitter queued them: a thread's submits, an actor's offloads. Workers are started
/// lazily, like Python's executor: one more whenever more jobs are queued
/// than workers are idle, up to N. Worker threads are named
/// `<pool name>_<index>` (see `this_thread_name()`).
///
/// Main operations
/// - `submit(fn)` from any thread (not only actors) → `future<R>`.
/// - `submit(fn, timeout)`: if no worker has started `fn` by then (every
///   worker busy), the future completes with `timeout` at that moment and
///   `fn` never runs.
/// - From inside an actor use `offload(self, pool, fn)` (offload.hpp): the
///   result arrives as a response message and no thread blocks.
/// - A job may take a `weave::stop_token` (`submit([](weave::stop_token st)
///   { ... })`, also through `offload`): then a stop reaches it while it
///   runs. `future::cancel()` (or the offload handle's `cancel()`), its
///   timeout, and a shutdown request the stop, with cause `cancelled`,
///   `timeout` or `shut_down`. A stopped job's outcome is that cause,
///   whatever it returns. A job that ignores its token for
///   `weave.cancel-grace` (100 ms) after the request is given up on: its
///   caller is answered with the cause at once, and its worker is
///   *quarantined*: it takes no further job, ends when the job finally
///   returns (its result is dropped and counted), and is replaced by a
///   fresh worker while no more than `weave.max-quarantined` (4) workers of
///   the pool are quarantined, so the pool keeps its size. A job without a
///   token parameter cannot be stopped once it runs: `cancel()` returns
///   false and a timeout only stops the waiting. The first request's cause
///   wins; only it arms the grace period. Callbacks registered on a job's
///   token (`stop_callback`, the stop-aware waits) run on the thread that
///   requests the stop: the caller of `cancel()`, the runtime's timer
///   thread for a deadline (a callback that blocks there delays every
///   other timeout), the thread running a shutdown.
/// - `stats()`: workers, busy, queued, completed, failed, cancelled,
///   quarantined.
/// - `shutdown(deadline)`: refuses new jobs (they fail at once with
///   `shut_down`), answers every queued job with `shut_down`, lets running
///   jobs finish until the deadline and abandons (counts) the rest: their
///   callers hear `shut_down` at the deadline. A job a worker has taken but
///   not yet started by then is answered `shut_down` and never runs. The
///   destructor does this with the runtime's `weave.shutdown-deadline` (at
///   once if the pool was shut down already); so does the runtime's
///   shutdown for every pool still alive. A job still running after its
///   pool was shut down or destroyed is also counted in the runtime's
///   shutdown report.
/// - Threads that must never block (see `this_thread_must_not_block()`: a
///   scheduler thread running an actor's handler, an event loop's own
///   thread) and the pool's own jobs never wait for the pool's running
///   jobs: there, the destructor stops accepting jobs and answers the queued
///   ones with `shut_down`, and returns at once, leaving the running jobs to
///   finish on their own (and the runtime's shutdown to wait for or abandon
///   them); `shutdown(d)` with `d > 0` throws `would_deadlock` before doing
///   anything (`shutdown(0s)` does not wait, and is allowed).
///
/// If a worker thread cannot be started (the system is out of threads or
/// memory), the pool goes on with the workers it has and tries again on a
/// later submit; while it has none at all, the jobs waiting for one are
/// answered with `job_failed`, naming the failure, instead of waiting for a
/// worker that may never come.
///
/// A job that throws completes with `job_failed` carrying the exception's
/// message (a job that throws `weave::exception` fails with that exception's
/// own error); the worker survives. A job whose offload deadline passed while it
/// was queued never runs.
///
/// Continuations (`then`) of a job run on the thread that completes it: the
/// worker, the canceller, the runtime's timer thread (`timeout`), the
/// thread running a shutdown (`shut_down`) or the thread whose submit failed
/// to start a worker (`job_failed`). weave holds none of its locks
/// while they run, so they may call back into the pool, even destroy it.
///
/// Thread-safety: all members may be called from any thread. A job's
/// submission happens-before its execution, which happens-before its result
/// is seen by the caller.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "caf/fwd.hpp"
#include "caf/timespan.hpp"

#include "runtime/deadline_scope.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/function_job.hpp"
#include "runtime/internal/job_stop.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/shutdown_report.hpp"

namespace weave {

class runtime;

namespace internal {
class pool_impl;
struct runtime_access;
} // namespace internal

class blocking_pool {
public:
  /// Counters; a consistent-enough snapshot for monitoring.
  struct stats_type {
    size_t max_workers = 0;
    /// Workers started so far and not quarantined (lazily, up to
    /// `max_workers`).
    size_t workers = 0;
    /// Workers running a job right now.
    size_t busy = 0;
    /// Jobs waiting for a worker.
    size_t queued = 0;
    /// Jobs that ran and returned a value.
    size_t completed = 0;
    /// Jobs that ran and threw (and were not asked to stop).
    size_t failed = 0;
    /// Jobs that ran and were asked to stop meanwhile (their outcome is the
    /// stop's cause), counted when they return.
    size_t stopped = 0;
    /// Jobs that never ran: cancelled, timed out, or answered `shut_down`.
    size_t cancelled = 0;
    /// Workers quarantined now: each runs a job that ignored its stop
    /// request past the grace period (they are not in `workers`).
    size_t quarantined = 0;
    /// Workers quarantined since the pool started.
    size_t quarantined_total = 0;
  };

  /// A pool of at most `max_workers` threads named `<name>_<index>`.
  /// Throws `weave::exception` (`invalid_argument`) if `max_workers` is 0 or
  /// above `max_pool_size`, or (`shut_down`) if the runtime is shutting down.
  blocking_pool(runtime& rt, size_t max_workers, std::string name = "pool");

  /// Shuts the pool down with the runtime's configured deadline (at once if
  /// it was shut down already). Inside one of the pool's own jobs and on a
  /// thread that must never block, it does not wait for running jobs (see
  /// the header comment).
  ~blocking_pool();

  blocking_pool(const blocking_pool&) = delete;
  blocking_pool& operator=(const blocking_pool&) = delete;

  /// Runs `fn()` (or `fn(token)`, see the header comment) on a worker; the
  /// future completes with its result. Under a `deadline_scope` (or inside a
  /// job with a deadline) the job gets that deadline, as if submitted with
  /// the time left as its timeout.
  template <class F>
  auto submit(F fn) -> future<internal::job_result_t<F>> {
    using r = internal::job_result_t<F>;
    auto j = caf::make_counted<internal::function_job<r, F>>(std::move(fn));
    auto fut = internal::make_future<r>(j);
    // Under a deadline scope (or inside a job with a deadline): timed.
    j->deadline = current_deadline();
    bool timed = j->deadline != internal::steady_clock::time_point::max();
    enqueue(std::move(j), timed);
    return fut;
  }

  /// Like `submit(fn)`, but if no worker has started the job within
  /// `timeout`, it never runs and the future completes with `timeout` at
  /// that moment, even while every worker is busy. A job that takes a
  /// `stop_token` and is still running then is asked to stop (cause
  /// `timeout`), and the grace ladder of the header comment applies. A
  /// negative `timeout` is `invalid_argument`; a huge one (`hours::max()`)
  /// means "never". A tighter `deadline_scope` deadline wins.
  template <class F, class Rep, class Period>
  auto submit(F fn, std::chrono::duration<Rep, Period> timeout)
    -> future<internal::job_result_t<F>> {
    using r = internal::job_result_t<F>;
    auto j = caf::make_counted<internal::function_job<r, F>>(std::move(fn));
    auto fut = internal::make_future<r>(j);
    if (timeout < timeout.zero()) {
      j->cancel_with(make_error(errc::invalid_argument,
                                "blocking_pool::submit: negative timeout"));
      return fut;
    }
    j->deadline = std::min(internal::deadline_after(timeout),
                           current_deadline());
    enqueue(std::move(j), true);
    return fut;
  }

  stats_type stats() const;

  const std::string& name() const noexcept;

  size_t max_workers() const noexcept;

  /// See the header comment. Idempotent: a later call answers nothing new,
  /// and reports the jobs still left running. A negative `deadline` is
  /// `invalid_argument`; a positive one is `would_deadlock` (and nothing is
  /// done) on a thread that must never block and inside one of the pool's
  /// own jobs, where waiting would block that thread or wait for itself.
  shutdown_report shutdown(caf::timespan deadline);

  /// The largest pool weave accepts.
  static constexpr size_t max_pool_size = 4096;

private:
  friend struct internal::runtime_access;

  /// A second handle on `impl` (`owning`: shuts it down when destroyed).
  blocking_pool(std::shared_ptr<internal::pool_impl> impl,
                caf::timespan deadline, bool owning);

  /// Queues a job (see `pool_impl::enqueue`); `key`: the submitting actor's
  /// id, whose jobs start in order (by default, the calling thread's).
  void enqueue(internal::job_ptr j, bool timed = false,
               uint64_t key = ~uint64_t{0});

  std::shared_ptr<internal::pool_impl> impl_;
  caf::timespan shutdown_deadline_{0};
  bool owning_ = true;
};

} // namespace weave
