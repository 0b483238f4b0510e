#pragma once

/// `runtime_config`: the configuration of a `weave::runtime`.
///
/// It is a `caf::actor_system_config`, so every CAF option works as usual and
/// weave's own options live beside them in the `weave` group, read through
/// CAF's option system: from the command line (`--weave.pool-size=8`) and
/// from the config file (`caf-application.ini`, section `[weave]`), or set in
/// code with CAF's `set("weave.pool-size", 8)`.
///
/// | option                   | default              | allowed        |
/// |--------------------------|----------------------|----------------|
/// | weave.pool-size          | min(32, cores + 4)   | 1..4096        |
/// | weave.shutdown-deadline  | 5s                   | 0s..1h         |
/// | weave.spin               | 50us                 | 0us..10ms      |
/// | weave.blocking-threshold | 100ms                | 1ms..1h        |
/// | weave.cancel-grace       | 100ms                | 0s..1h         |
/// | weave.max-quarantined    | 4                    | 0..4096        |
/// | weave.dump-on-slow-handler | false            | true, false    |
/// | weave.tcp-inline-turns   | 8                    | 0..1024        |
/// | weave.tcp-gather         | auto                 | auto, always, never |
///
/// `pool-size` sizes the default blocking pool like Python's default executor.
/// `spin` is how long an idle worker or a waiting thread spins before it
/// parks; it buys low latency for back-to-back work and costs nothing when
/// idle.
/// `cancel-grace` is how long a running job that takes a `stop_token` has to
/// end after its stop was requested (by `cancel()`, its deadline or a
/// shutdown) before its caller is answered anyway and its worker is
/// quarantined; `max-quarantined` is how many quarantined workers of one
/// pool are replaced by fresh ones (see blocking_pool.hpp).
/// `dump-on-slow-handler` (a flag on the command line,
/// `--weave.dump-on-slow-handler`) adds a thread dump (thread_dump.hpp) to
/// every report of the blocking detector (`slow_handler_event::dump`,
/// printed after the report's line by default).
/// `tcp-inline-turns` is how many actor turns in a row weave's TCP I/O
/// thread runs itself after a readiness, before it hands the chain to the
/// scheduler (actors/tcp.hpp: "Where actors run"); 0 sends every readiness
/// through the scheduler.
/// `tcp-gather` is where the turns that I/O thread woke run: `auto` keeps
/// them on that thread (up to `tcp-inline-turns` at a time) while other
/// processes leave this one less than 1.5 cores (read every 100 ms from
/// `/proc/stat`, of the cores this process may run on, and from its
/// cgroup's CPU quota if it has one), and hands them to the scheduler's
/// workers otherwise;
/// `always` and `never` fix either (actors/tcp.hpp: "Where actors run").
///
/// Scheduler choice: weave keeps CAF's work-stealing scheduler but changes
/// how its idle threads wait and where outside work lands. CAF's default
/// polls for 25 ms after each burst of work, sleeping 50 µs between polls (so
/// a message arriving then waits up to ~60 µs), then wakes every 10 ms
/// forever, and hands work from outside the scheduler to its workers
/// round-robin (waking a sleeping one while another is still polling).
/// weave polls aggressively for a short burst
/// (`work-stealing.aggressive-poll-attempts`), then goes straight to the
/// condition variable that is notified on every external enqueue
/// (`moderate-poll-attempts = 0`); outside work goes to a polling worker
/// first, else wakes a sleeping one; work stuck behind a busy worker is
/// stolen by a sleeping worker that weave's watchdog wakes, so the periodic
/// steal wake-up (`relaxed-sleep-duration`) is only a backstop, every 10 s.
/// An idle runtime uses ≈0% CPU, and a reply from a pool worker reaches a
/// waiting actor at once. Any of these can still be overridden through CAF's
/// own options.
///
/// Validation: `parse()` and `validate()` check every weave option (type and
/// range) and refuse unknown options in the `weave` group, naming the option
/// and listing the known ones; the runtime calls `validate()` at construction
/// and throws `weave::exception` (`invalid_config`) naming the option and its
/// allowed range. Command-line errors CAF reports (an unknown option, a value
/// it cannot parse) come back as `invalid_config` too, naming the argument.
///
/// Copy and move: CAF binds some of its options (`config-file`,
/// `stream.*`, `openssl.*`) to members of the configuration object, so a
/// plain member-wise move would leave the new object's parser writing into
/// the old one. A copy or move here builds a fresh option set bound to the
/// new object and then takes over every setting, so parsing a copied or
/// moved configuration always writes into that configuration. Options a
/// subclass added without storage (`add<T>(name, ...)`) are carried over;
/// options a subclass bound to its own members (`add(ref, ...)`) are not
/// (they would point into the old object): declare those without storage
/// and read them with `caf::get_or`. Thread hooks are owned uniquely, so a
/// configuration that holds any (every configuration a runtime has run on
/// does) can be moved but not copied: the copy throws `invalid_argument`.
///
/// Thread-safety: a configuration is a plain value; do not share one between
/// threads while it is being modified or parsed.

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/error.hpp"
#include "caf/timespan.hpp"

namespace weave {

namespace internal {
class blocking_detector;
struct runtime_access;
blocking_detector* detector_of(caf::actor_system& sys) noexcept;
} // namespace internal

class runtime_config : public caf::actor_system_config {
public:
  runtime_config();

  /// Copies every setting into a configuration whose options are bound to
  /// itself. Throws `weave::exception` (`invalid_argument`) if `other` holds
  /// thread hooks (they cannot be copied): move it instead.
  runtime_config(const runtime_config& other);

  /// Moves every setting, thread hooks included, into a configuration whose
  /// options are bound to itself; `other` stays a valid configuration.
  runtime_config(runtime_config&& other);

  runtime_config& operator=(const runtime_config&) = delete;
  runtime_config& operator=(runtime_config&&) = delete;

  /// Parses the command line and config file through CAF, then validates.
  /// Every error is `invalid_config` naming the offending argument or option.
  caf::error parse(int argc, char** argv);

  /// Checks every weave option; returns an `invalid_config` error naming the
  /// first offending option and its allowed range, or no error.
  caf::error validate() const;

  size_t pool_size() const;
  caf::timespan shutdown_deadline() const;
  caf::timespan spin() const;
  caf::timespan blocking_threshold() const;
  caf::timespan cancel_grace() const;
  size_t max_quarantined() const;
  bool dump_on_slow_handler() const;
  size_t tcp_inline_turns() const;
  /// "auto", "always" or "never".
  std::string tcp_gather() const;

  /// Python's default executor size: min(32, cores + 4).
  static size_t default_pool_size();

private:
  friend class runtime;
  friend struct internal::runtime_access;

  /// Takes over every setting of `other` (copied or moved, as `Config` says);
  /// this object's own option set stays bound to this object.
  template <class Config>
  void adopt(Config&& other);

  // Set by the runtime that owns this configuration (see runtime::from);
  // atomic: an actor the shutdown abandoned may read it while ~runtime
  // clears it. `retired_`: the owner is gone (for a clearer error).
  std::atomic<class runtime*> owner_{nullptr};
  std::atomic<bool> retired_{false};

  // The runtime's blocking detector, set before the actor system starts and
  // never changed: the scheduler's threads find it here (the configuration,
  // like the detector, outlives an actor system left in the graveyard).
  internal::blocking_detector* detector_ = nullptr;

  friend internal::blocking_detector*
  internal::detector_of(caf::actor_system& sys) noexcept;

  // Objects that must live as long as the actor system, which may outlive
  // the runtime (the graveyard keeps an abandoned system with its
  // configuration): an execution unit that actors remember as their last
  // context (actors/internal/io_unit.hpp). Never copied or moved along.
  struct kept_objects {
    std::mutex mtx;
    std::vector<std::shared_ptr<void>> items;
  };
  std::shared_ptr<kept_objects> kept_ = std::make_shared<kept_objects>();
};

} // namespace weave
