#pragma once

/// `runtime`: owns a `caf::actor_system`, weave's default blocking pool and
/// the orderly shutdown of everything weave started.
///
/// Create one per program (like `asyncio.run`'s loop): it starts CAF's
/// scheduler (see runtime_config.hpp for why it is tuned the way it is),
/// names its threads, and counts them (thread_census.hpp). Actors are spawned
/// through `system()` as usual; `offload`, `spawn_blocker`, `loop`,
/// `blocking_pool` and `channel` find the runtime from the actor system.
///
/// Shutdown (`shutdown()` or the destructor) runs in phases and returns
/// within its deadline plus `shutdown_margin`, whatever user code does
/// (jobs, loop functions, continuations or actors that never return). It
/// returns a report (printed as one line on stderr when it had to cancel or
/// abandon work):
///  1. stop accepting work: every later submit fails at once with
///     `shut_down`, and so does creating a pool, loop or channel (creation
///     racing shutdown is either refused or stopped, never missed);
///  2. stop loops: pending loop futures complete with `shut_down`;
///  3. close channels: blocked producers and consumers are released;
///  4. pools: queued jobs are answered with `shut_down`, running jobs may
///     finish until the deadline, the rest are abandoned (their callers hear
///     `shut_down` at the deadline) and counted; this includes jobs left
///     running by a pool that was shut down or destroyed earlier;
///  5. blockers and user actors get until the deadline to finish; blockers
///     still running are abandoned like pool jobs;
///  6. the actor system is destroyed, joining every CAF thread. If a thread
///     is still running (a weave thread stuck in user code, or a user's
///     detached or blocking actor), the actor system is deliberately left
///     alive, because destroying it would wait for that thread forever; the
///     report counts those threads (CAF's count of detached threads).
/// The phases run on a thread of weave's own (`weave-shutdown`), so the
/// continuations of the jobs it answers run there; if they (or anything
/// else) hold it past the deadline plus the margin, the caller returns
/// anyway with what was done so far, and that thread is counted as
/// abandoned too.
///
/// One thing shutdown cannot undo: CAF 0.17.6 pins an actor system to every
/// thread that spawned an actor on it (a thread-local reference that the
/// system's destructor waits for). weave drops the references its own
/// spawns leave on your threads, and the caller's own; a thread of yours
/// that spawned actors itself and is still running at shutdown holds up the
/// final destruction until it ends. Shutdown still returns in time, and
/// counts its own thread as abandoned until then. Such a thread calls
/// `weave::release_this_thread()` (this_thread.hpp) once it is done
/// spawning, e.g. a main thread that leaves the program's end to a signal
/// actor.
///
/// Locking: weave holds none of its locks while user code runs (jobs,
/// continuations, destructors of user values); the shutdown's own state is
/// guarded by a lock that is never held while its phases run.
///
/// Thread-safety: `system()`, `default_pool()` and `config()` may be used
/// from any thread; `system()` and `default_pool()` throw `shut_down` once
/// shutdown has begun. `shutdown()` may be called from any non-weave
/// thread, once or more: a concurrent call waits for the first to finish,
/// later ones (and a call from a continuation that shutdown itself runs)
/// return an empty report. Do not destroy a runtime from one of its own
/// threads.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "caf/actor_system.hpp"
#include "caf/timespan.hpp"

#include "runtime/blocking_pool.hpp"
#include "runtime/metrics.hpp"
#include "runtime/runtime_config.hpp"
#include "runtime/shutdown_report.hpp"
#include "runtime/slow_handler_event.hpp"
#include "runtime/thread_dump.hpp"

namespace weave {

namespace internal {
class component_registry;
class blocker_set;
class blocking_detector;
class deadline_timer;
struct runtime_access;
} // namespace internal

class runtime {
public:
  /// How long `shutdown(d)` may take beyond `d`: waking up after the
  /// deadline, deciding what is abandoned, and joining CAF's threads when
  /// nothing is stuck (measured well below this under load and sanitizers).
  static constexpr caf::timespan shutdown_margin = std::chrono::milliseconds{500};

  /// Starts a runtime. Throws `weave::exception` (`invalid_config`) if the
  /// configuration is invalid.
  explicit runtime(runtime_config cfg = runtime_config{});

  /// Parses `--weave.*` (and CAF's) options and the config file, then starts.
  runtime(int argc, char** argv);

  /// Shuts down with the configured deadline (see above).
  ~runtime();

  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// The actor system. Throws `shut_down` once shutdown has begun.
  caf::actor_system& system();

  const runtime_config& config() const noexcept {
    return *config_;
  }

  /// The default pool (`run_in_executor(None, ...)`), sized by
  /// `weave.pool-size`; its threads are named `weave-pool_<i>` and start
  /// when it gets work. Throws `shut_down` once shutdown has begun.
  blocking_pool& default_pool() {
    if (shutting_down())
      raise_shut_down();
    return *default_pool_;
  }

  /// Shuts down with the configured deadline.
  shutdown_report shutdown();

  /// Shuts down, giving running work at most `deadline` (see above); a
  /// negative `deadline` is `invalid_argument`.
  shutdown_report shutdown(caf::timespan deadline);

  /// True once shutdown has begun.
  bool shutting_down() const noexcept {
    return shutting_down_.load(std::memory_order_acquire);
  }

  /// The runtime that owns `sys`. Throws `invalid_argument` if `sys` was not
  /// created by a weave runtime.
  static runtime& from(caf::actor_system& sys);

  /// What every thread of this runtime is doing now, taken without
  /// stopping any (see thread_dump.hpp). Any thread may call it, also after
  /// shutdown (it then lists the threads still running).
  thread_dump dump() const;

  /// How many times the blocking detector has seen an event-based actor hold
  /// a scheduler thread longer than `weave.blocking-threshold` (see
  /// internal/blocking_detector.hpp for what it can and cannot see).
  size_t slow_handlers() const noexcept;

  /// Replaces the detector's report (by default one line on stderr). The
  /// handler runs on weave's watchdog thread.
  void on_slow_handler(std::function<void(const slow_handler_event&)> handler);

  /// A snapshot of the runtime's metrics: every live pool, channel and loop,
  /// every scheduler worker, threads by role (see metrics.hpp). Any thread,
  /// any time (also during and after shutdown); stops nothing.
  metrics_snapshot metrics() const;

private:
  /// Starts the shutdown if none began or ended (and this thread is not
  /// the one running it): true, and the caller must call `run_shutdown`.
  bool claim_shutdown();

  /// The shutdown itself, once claimed.
  shutdown_report run_shutdown(caf::timespan deadline);

  friend struct internal::runtime_access;

  void start();

  [[noreturn]] static void raise_shut_down();

  std::shared_ptr<runtime_config> config_;
  // Shared with a shutdown that may outlive the runtime (and its system).
  std::shared_ptr<internal::blocking_detector> detector_;
  std::unique_ptr<caf::actor_system> system_;
  // `system_` until shutdown begins, then null (system() refuses).
  std::atomic<caf::actor_system*> live_system_{nullptr};
  // CAF's own detached actors (its printer), not counted as left behind.
  size_t caf_detached_ = 0;
  std::shared_ptr<internal::component_registry> components_;
  std::shared_ptr<internal::blocker_set> blockers_;
  std::shared_ptr<internal::deadline_timer> timer_;
  // Created with the runtime (its workers start lazily), so that the hot
  // path to it takes no lock.
  std::unique_ptr<blocking_pool> default_pool_;
  std::atomic<bool> shutting_down_{false};
  // Guards the shutdown's stage only; never held while shutdown runs (its
  // phases run user code: continuations of the jobs they answer).
  std::mutex shutdown_mtx_;
  std::condition_variable shutdown_cv_;
  bool shutdown_started_ = false;
  bool shutdown_done_ = false;
};

} // namespace weave
