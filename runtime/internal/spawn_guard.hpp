#pragma once

// Internal: keeps weave's own spawns from pinning an actor system to the
// calling thread.
//
// CAF 0.17.6's `spawn` stores a reference to the actor system's logger in a
// thread-local of the spawning thread, and the actor system's destructor
// waits until every such reference is gone. weave spawns its own actors
// from user threads (a pool's first job starts a worker on the submitting
// thread; a loop or blocker starts on the creating thread), so without this
// guard any such thread still alive at shutdown would hold up the
// destruction of the actor system. The guard drops the reference again if
// the thread held none before (CAF's own threads always hold one: there it
// does nothing).

#include "caf/logger.hpp"

namespace weave::internal {

class spawn_guard {
public:
  spawn_guard() noexcept : had_(caf::logger::current_logger() != nullptr) {
    // nop
  }

  ~spawn_guard() {
    if (!had_)
      caf::logger::set_current_actor_system(nullptr);
  }

  spawn_guard(const spawn_guard&) = delete;
  spawn_guard& operator=(const spawn_guard&) = delete;

private:
  bool had_;
};

} // namespace weave::internal
