#pragma once

/// `process_pool`: worker processes for registered jobs, the C++ answer to
/// `ProcessPoolExecutor`. A job that crashes costs one job, not the program.
///
/// Setup (three lines):
///
///     int main(int argc, char** argv) {
///       WEAVE_PROCESS_WORKER_MAIN(argc, argv);   // first line of main
///       weave::runtime_config cfg;
///       weave::enable_process_pools(cfg);        // loads CAF's middleman
///       weave::runtime rt{std::move(cfg)};
///       weave::process_pool pool{rt, 4};         // 4 worker processes
///       auto n = pool.submit(count_words("a.txt")).get();
///
/// Workers: weave starts each worker by fork + exec of this very program
/// (`/proc/self/exe`) with a worker flag, or of the worker program named in
/// `process_pool_options::program` (whose main is
/// `return weave::run_worker_process(argc, argv);`). The first line of
/// main, `WEAVE_PROCESS_WORKER_MAIN(argc, argv)`, turns such a process into
/// a worker (like Python's `if __name__ == "__main__"`): it never returns
/// there. A worker connects back to the pool over loopback (CAF's
/// middleman, BASP over TCP on 127.0.0.1, a port the pool published), sends
/// its job table (see registered_job.hpp), and runs jobs on
/// `threads_per_worker` threads. A worker exits when its pool's connection
/// goes away, and the kernel kills it if the thread that started it ends.
///
/// Main operations
/// - `submit(job(args...))`, `submit(job, args...)`: from any thread →
///   `future<R>`; `submit(job(args...), timeout)`.
/// - `offload(self, pool, job(args...))` / `offload(..., timeout)` inside an
///   actor, exactly as with a `blocking_pool` (offload.hpp).
/// - `stats()`, `worker_pids()`, `shutdown(deadline)`.
///
/// Credit: a worker never holds more than `capacity` jobs; the pool queues
/// the rest here, first in first out, and sends more whenever a worker
/// returns results. A worker starts a job only once the pool granted it,
/// at most 16 per thread granted and not finished, so the pool always
/// knows which jobs may have started: the pool grants a job as it sends it
/// while the worker has room for it, and a job sent beyond that (or a
/// retried one, or one due or cancelled as it is sent) waits in the
/// worker, which asks for it ("claim", answered at once) when room frees;
/// jobs start in the order they reach a worker. Capacity above 16 per
/// thread therefore costs claims (measured: bench/README.md). Jobs, claims
/// and results travel in batches, several per message; a worker sends its
/// results back together when no job waits for a thread of its own, or at
/// the latest 0.5 ms after the first of them. A granted job
/// that no thread of the worker has begun is still revocable (below):
/// "started" means a worker thread began it.
///
/// Failures
/// - A job that throws fails with `job_failed` (its message); the worker
///   survives.
/// - A worker that crashes (a signal, `abort`, `exit`), is killed, or whose
///   connection drops or freezes (no heartbeat within the middleman's
///   connection timeout: see `enable_process_pools`) is lost. Loss is seen
///   by monitoring the worker actor over the middleman and by reaping the
///   child process (on a thread of the pool's, never a scheduler thread),
///   whichever comes first. Every job the worker held is answered at once
///   with `worker_lost`; its message begins with "not started" (never
///   granted to that worker: safe to retry) or "maybe executed", and
///   `weave::maybe_executed(err)` tells them apart. An idempotent job
///   (`WEAVE_IDEMPOTENT_JOB`) is first retried, once, at the head of the
///   queue; its caller sees one outcome. A lost worker is replaced, so the
///   pool keeps its size. A worker that exits before it connects is
///   restarted after `respawn_backoff` (200 ms), and each further such
///   exit in a row doubles the wait, up to `max_respawn_backoff` (5 s): a
///   worker program that keeps crashing at start does not make the pool
///   spin forking. A worker that connects resets the wait.
/// - A frozen worker (stopped, or stuck so that its middleman does not
///   answer) is noticed by CAF's heartbeat: its jobs are answered
///   `worker_lost` within `middleman.heartbeat-interval` +
///   `middleman.connection-timeout` of its last sign of life (500 ms + 5 s
///   by default, see `enable_process_pools`; the pool's workers use the
///   pool's values). It gets SIGKILL (a stopped process ignores SIGTERM),
///   is reaped and replaced.
/// - A timeout: a job that no worker has started by then never runs, and
///   its caller hears `timeout` at that moment (as with a `blocking_pool`).
///   For a job granted to a worker ahead, the pool asks the worker to revoke
///   it: if no thread began it, it is dropped there, and its caller hears
///   `timeout` marked "not started" as soon as the worker answers (a round
///   trip), the worker and its other jobs untouched. The worker also checks
///   each job's deadline as a thread is about to begin it (a job carries
///   its deadline; a pool's workers share its host's monotonic clock) and
///   drops it past that, answered the same way, so a revoke that arrives
///   after the thread took the job cannot let it run late. Once started, a job
///   cannot be stopped: `submit`'s timeout then only bounds the wait for a
///   start, while `offload`'s timeout (CAF's response timeout) answers the
///   actor with `timeout` and drops the late result. An idempotent job
///   whose worker is lost after its timeout passed is not retried: it is
///   answered `timeout`, marked "maybe executed" if a worker had been
///   granted it; a retried job is not started again after its timeout either.
/// - `cancel()` of a future or offload handle: a job no worker has started
///   never runs; one granted ahead and not begun is revoked as above and
///   answered `cancelled` marked "not started" (`stats().revoked`), and
///   `cancel()` returns true while that is asked. A started one, when
///   `threads_per_worker` is 1, is stopped
///   for real: if it has not finished after the runtime's
///   `weave.cancel-grace` (100 ms), its worker gets SIGKILL, the job is
///   answered `cancelled`, the other jobs that worker held are answered
///   `worker_lost` with their marks (idempotent ones retried), and the
///   worker is replaced. A worker lost while a revoke is in flight answers
///   the job once (`cancelled`). An idempotent job waiting here to be
///   retried is answered `cancelled` at once and does not run again. A
///   retried job is marked "maybe executed" in every later answer (it may
///   have run on the worker it lost), even one its next worker dropped.
///   With more threads per worker a running job cannot be stopped (killing
///   the worker would stop jobs nobody cancelled): the job runs on and
///   keeps its value; the first `cancel()` of a granted job returns true
///   (the revoke's answer comes later), a later one returns false once the
///   worker answered that the job runs.
///
/// Shutdown (`shutdown(d)`, the destructor with the runtime's
/// `weave.shutdown-deadline`, or the runtime's shutdown for a pool still
/// alive): new jobs fail with `shut_down`; queued jobs are answered
/// `shut_down` (counted as cancelled); jobs the workers hold may finish
/// until the deadline, the rest are answered `shut_down` (counted as
/// abandoned, or cancelled if no worker started them); then every worker
/// gets SIGTERM, and SIGKILL if it has not exited at the deadline (or
/// `term_grace` after SIGTERM, whichever is later); every child is reaped,
/// so no zombie is left.
///
/// Errors: bad options (0 workers, a missing worker program, capacity below
/// the threads), no middleman, a pool made inside a worker process:
/// `invalid_argument`; a worker's job table that does not match:
/// `registry_mismatch` naming the job (or, for a worker program built
/// with another weave version, naming the pool protocol); no worker connected within
/// `start_timeout`: `timeout`; on a thread that must never block (the
/// constructor waits for its workers): `would_deadlock`. Each is thrown
/// by the constructor as `weave::exception`.
///
/// Thread-safety: every member may be called from any thread. A job's
/// submission happens-before its execution in the worker, which
/// happens-before its caller sees the result. The pool's lock is never held
/// while user code runs: future continuations run on the pool's message
/// thread (`<name>-io`) or on the thread that loses a worker or shuts the
/// pool down. Keep them short, or hand their work on: that thread also
/// takes every worker's results, so a continuation that blocks it delays
/// every other job's answer for as long.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "caf/timespan.hpp"

#include "runtime/future.hpp"
#include "runtime/internal/remote_job.hpp"
#include "runtime/offload.hpp"
#include "runtime/registered_job.hpp"
#include "runtime/runtime.hpp"
#include "runtime/runtime_config.hpp"
#include "runtime/shutdown_report.hpp"

namespace weave {

namespace internal {
class process_pool_impl;
struct process_pool_access;
} // namespace internal

/// Loads CAF's middleman into `cfg` and turns on its heartbeat, so that a
/// frozen worker is noticed: unless set already, `middleman.heartbeat-
/// interval` becomes `default_heartbeat_interval` (500 ms) and
/// `middleman.connection-timeout` `default_connection_timeout` (5 s).
/// Call once, before the runtime is made.
void enable_process_pools(runtime_config& cfg);

constexpr caf::timespan default_heartbeat_interval
  = std::chrono::milliseconds{500};
constexpr caf::timespan default_connection_timeout = std::chrono::seconds{5};

/// True if `err` is not a `worker_lost`, `cancelled` or `timeout` marked
/// "not started": false only when the job certainly never ran (safe to
/// retry).
bool maybe_executed(const caf::error& err) noexcept;

/// True if this process was started by a process pool as its worker.
bool is_worker_process(int argc, char** argv) noexcept;

/// Runs this process as a pool worker until its pool goes away; returns
/// the exit status (2, with a message, if it was not started as a worker).
/// A worker also ends, with a message on stderr, with status 3 if it cannot
/// reach its pool, 4 if it cannot keep a job's outcome (out of memory) and
/// 6 if it receives jobs it cannot read; the pool then answers its jobs as
/// lost.
int run_worker_process(int argc, char** argv);

/// The first line of `main` in a program whose process pools run itself.
#define WEAVE_PROCESS_WORKER_MAIN(argc, argv)                                  \
  do {                                                                         \
    if (::weave::is_worker_process(argc, argv))                                \
      return ::weave::run_worker_process(argc, argv);                          \
  } while (false)

struct process_pool_options {
  /// Worker processes (1..`process_pool::max_workers`).
  size_t workers = 0;
  /// Jobs one worker runs at once, each on a thread of its own.
  size_t threads_per_worker = 1;
  /// Jobs one worker holds at once (running, granted, or waiting there);
  /// at least `threads_per_worker`.
  size_t capacity = 16;
  /// The worker program; empty: this program (`/proc/self/exe`).
  std::string program;
  /// Names the pool's threads (`<name>-io`, `<name>-w<i>`).
  std::string name = "procpool";
  /// How long the constructor waits for every worker to connect.
  caf::timespan start_timeout = std::chrono::seconds{30};
  /// First wait before restarting a worker that exited before it connected
  /// (positive); doubled for each such exit in a row, up to
  /// `max_respawn_backoff` (at least `respawn_backoff`).
  caf::timespan respawn_backoff = std::chrono::milliseconds{200};
  caf::timespan max_respawn_backoff = std::chrono::seconds{5};
};

class process_pool {
public:
  struct stats_type {
    /// Workers connected now.
    size_t workers = 0;
    /// Jobs waiting here for a worker.
    size_t queued = 0;
    /// Jobs the workers hold.
    size_t in_flight = 0;
    /// Jobs that returned a value.
    size_t completed = 0;
    /// Jobs that threw (`job_failed`).
    size_t failed = 0;
    /// Jobs answered `worker_lost`.
    size_t lost = 0;
    /// Started jobs answered `cancelled` by the pool: stopped by killing
    /// their worker, cancelled while their worker was lost, or cancelled
    /// while waiting to be retried (revoked ones count in `revoked`).
    size_t cancelled = 0;
    /// Jobs granted to a worker ahead but not started, dropped there at
    /// their cancel or timeout (they never ran; their worker lives on).
    size_t revoked = 0;
    /// Idempotent jobs retried after losing their worker.
    size_t retried = 0;
    /// Workers lost (and replaced, unless shutting down), including those
    /// killed to cancel a job.
    size_t workers_lost = 0;
    /// Messages that carried jobs to the workers: a process pool sends jobs
    /// in batches, so jobs / `run_messages` is the mean batch (a remote
    /// pool sends one job per message and leaves both counts 0).
    size_t run_messages = 0;
    /// Messages that carried results back: batches of results, and one per
    /// job that threw or was dropped past its deadline in its worker.
    size_t result_messages = 0;
  };

  static constexpr size_t max_workers = 256;
  static constexpr size_t max_threads_per_worker = 4096;
  /// Between SIGTERM and SIGKILL at least this long, even past the deadline.
  static constexpr caf::timespan term_grace = std::chrono::milliseconds{100};
  /// The defaults of `process_pool_options::respawn_backoff` and
  /// `max_respawn_backoff`.
  static constexpr caf::timespan respawn_backoff
    = std::chrono::milliseconds{200};
  static constexpr caf::timespan max_respawn_backoff = std::chrono::seconds{5};

  process_pool(runtime& rt, process_pool_options opts);

  process_pool(runtime& rt, size_t workers);

  /// Shuts the pool down with the runtime's configured deadline.
  ~process_pool();

  process_pool(const process_pool&) = delete;
  process_pool& operator=(const process_pool&) = delete;

  template <class Sig>
  auto submit(bound_job<Sig> call) {
    return submit_impl(std::move(call), std::nullopt);
  }

  /// A negative `timeout` completes the future at once with
  /// `invalid_argument`; a huge one means none.
  template <class Sig, class Rep, class Period>
  auto submit(bound_job<Sig> call, std::chrono::duration<Rep, Period> timeout) {
    return submit_impl(std::move(call),
                       internal::make_offload_timeout(timeout));
  }

  template <class Sig, class... Xs>
  auto submit(const registered_job<Sig>& job, Xs&&... xs) {
    return submit(job(std::forward<Xs>(xs)...));
  }

  stats_type stats() const;

  /// The pid of each worker slot's process (0 while none runs).
  std::vector<int> worker_pids() const;

  const std::string& name() const noexcept;

  size_t size() const noexcept;

  /// See the header comment. Idempotent; a negative deadline is
  /// `invalid_argument`.
  shutdown_report shutdown(caf::timespan deadline);

private:
  friend struct internal::process_pool_access;

  template <class Sig>
  auto submit_impl(bound_job<Sig> call,
                   std::optional<internal::offload_timeout> timeout) {
    using job_type = registered_job<Sig>;
    using r = typename job_type::result_type;
    auto st = caf::make_counted<internal::remote_future_job<job_type>>();
    auto fut = internal::make_future<r>(st);
    if (timeout && timeout->refused) {
      st->cancel_with(make_error(errc::invalid_argument,
                                 "process_pool::submit: negative timeout"));
      return fut;
    }
    auto c = std::make_shared<internal::remote_call>();
    c->entry = &call.job().entry();
    c->job = st;
    c->target = st.get();
    if (timeout && timeout->value)
      c->deadline = internal::deadline_after(*timeout->value);
    try {
      c->args = call.encode_args();
    } catch (const exception& e) {
      st->cancel_with(e.error());
      return fut;
    }
    enqueue(std::move(c), timeout && timeout->value
                            ? *timeout->value
                            : caf::timespan::max());
    return fut;
  }

  /// Queues `c` (or answers it at once: shut down, unknown job).
  void enqueue(internal::remote_call_ptr c, caf::timespan timeout);

  std::shared_ptr<internal::process_pool_impl> impl_;
  caf::timespan shutdown_deadline_;
};

namespace internal {

struct process_pool_access {
  static void enqueue(process_pool& pool, remote_call_ptr c,
                      caf::timespan timeout) {
    pool.enqueue(std::move(c), timeout);
  }

  /// How many calls were granted to the workers and not answered (tests).
  static size_t claimed(const process_pool& pool);
};

template <class Self, class Sig>
auto offload_remote(Self* self, process_pool& pool, bound_job<Sig> call,
                    offload_timeout timeout) {
  using job_type = registered_job<Sig>;
  using t = typename job_type::result_type;
  auto rid = self->new_request_id(caf::message_priority::normal);
  auto j = caf::make_counted<remote_actor_job<job_type>>(self->ctrl(),
                                                         rid.response_id());
  offload_handle<Self, t> handle{self, rid, j};
  if (timeout.refused) {
    j->cancel_with(make_error(errc::invalid_argument,
                              "offload: negative timeout (or not a number)"));
    return handle;
  }
  auto c = std::make_shared<remote_call>();
  c->entry = &call.job().entry();
  c->job = j;
  c->target = j.get();
  if (timeout.value) {
    c->deadline = saturating_add(steady_clock::now(), *timeout.value);
    self->request_response_timeout(caf::duration{*timeout.value}, rid);
  }
  try {
    c->args = call.encode_args();
  } catch (const exception& e) {
    j->cancel_with(e.error());
    return handle;
  }
  process_pool_access::enqueue(pool, std::move(c),
                               timeout.value ? *timeout.value
                                             : caf::timespan::max());
  return handle;
}

} // namespace internal

/// Runs a registered job on a process pool from inside an actor; the
/// outcome arrives like any offload's (offload.hpp).
template <class Self, class Sig>
auto offload(Self* self, process_pool& pool, bound_job<Sig> call) {
  return internal::offload_remote(self, pool, std::move(call),
                                  internal::offload_timeout{});
}

/// With a timeout (`weave::errc::timeout`).
template <class Self, class Sig, class Rep, class Period>
auto offload(Self* self, process_pool& pool, bound_job<Sig> call,
             std::chrono::duration<Rep, Period> timeout) {
  return internal::offload_remote(self, pool, std::move(call),
                                  internal::make_offload_timeout(timeout));
}

} // namespace weave
