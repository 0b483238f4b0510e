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
constexpr auto io_blocking_threshold = std::chrono::milliseconds{250};

/// A runtime configuration with that threshold.
inline runtime_config io_config() {
  runtime_config cfg;
  cfg.set("weave.blocking-threshold", caf::timespan{io_blocking_threshold});
  return cfg;
}

} // namespace weave::test
