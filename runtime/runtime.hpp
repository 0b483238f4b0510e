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
/// Shutdown (`shutdown()` or the destructor) runs in phases, never takes
/// longer than its deadline plus a small margin, and returns a report
/// (printed as one line on stderr when it had to cancel or abandon work):
///  1. stop accepting work: every later submit fails at once with `shut_down`;
///  2. stop loops: pending loop futures complete with `shut_down`;
///  3. close channels: blocked producers and consumers are released;
///  4. pools: queued jobs are answered with `shut_down`, running jobs may
///     finish until the deadline, the rest are abandoned and counted;
///  5. blockers and user actors get until the deadline to finish;
///  6. the actor system is destroyed, joining every CAF thread. If a thread
///     had to be abandoned (user code that never returns), the actor system
///     is deliberately left alive, because destroying it would wait for that
///     thread forever; the report counts it.
///
/// Thread-safety: `system()`, `default_pool()` and `config()` may be used
/// from any thread. `shutdown()` may be called from any non-weave thread,
/// once or more (later calls return an empty report). Do not destroy a
/// runtime from one of its own threads.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include "caf/actor_system.hpp"
#include "caf/timespan.hpp"

#include "runtime/blocking_pool.hpp"
#include "runtime/runtime_config.hpp"
#include "runtime/shutdown_report.hpp"
#include "runtime/slow_handler_event.hpp"

namespace weave {

namespace internal {
class component;
class component_registry;
class blocker_set;
class blocking_detector;
} // namespace internal

class runtime {
public:
  /// Starts a runtime. Throws `weave::exception` (`invalid_config`) if the
  /// configuration is invalid.
  explicit runtime(runtime_config cfg = runtime_config{});

  /// Parses `--weave.*` (and CAF's) options and the config file, then starts.
  runtime(int argc, char** argv);

  /// Shuts down with the configured deadline (see above).
  ~runtime();

  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  caf::actor_system& system() noexcept {
    return *system_;
  }

  const runtime_config& config() const noexcept {
    return *config_;
  }

  /// The default pool (`run_in_executor(None, ...)`), sized by
  /// `weave.pool-size`; its threads are named `weave-pool_<i>`.
  blocking_pool& default_pool();

  /// Shuts down with the configured deadline.
  shutdown_report shutdown();

  /// Shuts down, giving running work at most `deadline`.
  shutdown_report shutdown(caf::timespan deadline);

  /// True once shutdown has begun.
  bool shutting_down() const noexcept {
    return shutting_down_.load(std::memory_order_acquire);
  }

  /// The runtime that owns `sys`. Throws `invalid_argument` if `sys` was not
  /// created by a weave runtime.
  static runtime& from(caf::actor_system& sys);

  /// How many times the blocking detector has seen an event-based actor hold
  /// a scheduler thread longer than `weave.blocking-threshold` (see
  /// internal/blocking_detector.hpp for what it can and cannot see).
  size_t slow_handlers() const noexcept;

  /// Replaces the detector's report (by default one line on stderr). The
  /// handler runs on weave's watchdog thread.
  void on_slow_handler(std::function<void(const slow_handler_event&)> handler);

  /// Internal: the blocking detector, or null (with a non-weave scheduler).
  internal::blocking_detector* detector() noexcept {
    return detector_.get();
  }

  /// Internal: components register to be stopped at shutdown.
  void register_component(std::shared_ptr<internal::component> c);

  /// Internal: blockers started by spawn_blocker.
  const std::shared_ptr<internal::blocker_set>& blockers() const noexcept {
    return blockers_;
  }

private:
  void start();

  std::shared_ptr<runtime_config> config_;
  std::unique_ptr<internal::blocking_detector> detector_;
  std::unique_ptr<caf::actor_system> system_;
  std::unique_ptr<internal::component_registry> components_;
  std::shared_ptr<internal::blocker_set> blockers_;
  std::mutex pool_mtx_;
  std::unique_ptr<blocking_pool> default_pool_;
  std::atomic<bool> shutting_down_{false};
  std::mutex shutdown_mtx_;
  bool shut_down_ = false;
};

} // namespace weave
