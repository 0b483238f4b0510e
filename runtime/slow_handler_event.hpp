#pragma once

/// `slow_handler_event`: what the blocking detector reports when an
/// event-based actor holds a scheduler thread longer than
/// `weave.blocking-threshold`: an event loop must never be blocked, and a
/// handler that holds a scheduler thread blocks every actor queued behind it.
/// See `runtime::on_slow_handler` and `runtime::slow_handlers`.
///
/// Thread-safety: a plain value.

#include <cstddef>
#include <optional>
#include <string>

#include "caf/actor_addr.hpp"
#include "caf/timespan.hpp"

#include "runtime/thread_dump.hpp"

namespace weave {

struct slow_handler_event {
  /// The actor that held the thread.
  caf::actor_id actor = 0;
  /// Its `name()`.
  std::string actor_name;
  /// The scheduler worker (0-based) that was held; the number of scheduler
  /// workers (one past the last) for weave's TCP I/O thread, which runs
  /// the turns of actors its sockets wake (actors/tcp.hpp).
  size_t worker = 0;
  /// How long the actor had held it when it was noticed (wall time).
  caf::timespan held{0};
  /// How much of `held` the thread spent waiting for a core (preempted by
  /// the kernel, as the watchdog could measure it): not counted against the
  /// threshold. `held - waited_for_cpu` exceeded it.
  caf::timespan waited_for_cpu{0};
  /// What every thread of the runtime was doing when it was noticed, with
  /// `weave.dump-on-slow-handler` on (else none).
  std::optional<thread_dump> dump;
};

} // namespace weave
