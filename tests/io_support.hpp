#pragma once

// For the suites of weave's I/O actors (processes, name resolution, TCP,
// timers), which assert that no handler blocked a scheduler thread
// (`rt.slow_handlers() == 0`).

#include <chrono>

#include "caf/timespan.hpp"

#include "runtime/runtime_config.hpp"

namespace weave::test {

/// The blocking detector's threshold in those suites. The detector sees
/// wall time: a handler whose thread the OS took off the CPU for longer
/// than the default 100 ms (seen at 102 ms on a 2-core machine at load 17)
/// is reported like one that blocked. The calls these actors must never
/// make on a scheduler thread (a connect to an address that drops SYNs, a
/// lookup at a silent name server, a read of an idle pipe) block for
/// seconds in the tests, far above this.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/// Sanitizers make every turn several times longer, and a preempted one
/// longer still. A call that waits only out a test's sub-second deadline
/// on a scheduler thread (e.g. a 300 ms connect) is then below the
/// threshold; the plain build's 250 ms still reports it.
constexpr auto io_blocking_threshold = std::chrono::milliseconds{1000};
#else
constexpr auto io_blocking_threshold = std::chrono::milliseconds{250};
#endif

/// How much slower a turn is in this build: 1 plain, 4 under a sanitizer
/// (ThreadSanitizer turns took 20-250 ms where plain ones take 1-30).
/// For the few tests that bound a time that should be short, or need a
/// deadline not to fire while traffic flows.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int sanitizer_slowdown = 4;
#else
constexpr int sanitizer_slowdown = 1;
#endif

/// A runtime configuration with that threshold.
inline runtime_config io_config() {
  runtime_config cfg;
  cfg.set("weave.blocking-threshold", caf::timespan{io_blocking_threshold});
  return cfg;
}

} // namespace weave::test
