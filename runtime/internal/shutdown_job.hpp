#pragma once

// Internal: one runtime shutdown, shared by the thread that called
// `runtime::shutdown` and the `weave-shutdown` thread that runs its phases
// (see runtime.hpp). The caller may give up on that thread at the deadline
// plus part of the margin (user code holds it), so everything the thread
// touches lives here, jointly owned.
//
// Locking: `mtx` guards the report and the hand-over of the actor system
// and detector (moved out under it before the thread destroys or buries
// them, so that a caller giving up can still read CAF's thread count). No
// user code runs under it: the phases run between its critical sections.

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "caf/fwd.hpp"

#include "runtime/internal/blocking_detector.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/runtime_config.hpp"
#include "runtime/shutdown_report.hpp"

namespace weave::internal {

struct shutdown_job {
  std::shared_ptr<runtime_config> config;
  std::vector<component_ptr> components;
  // CAF's own detached actors (its printer), which CAF stops itself.
  size_t caf_detached = 0;
  steady_clock::time_point start;
  steady_clock::time_point until;
  std::mutex mtx;
  std::condition_variable cv;
  // Guarded by `mtx` (the caller reads them when it gives up): moved out
  // under the lock before the thread destroys or buries them.
  std::unique_ptr<caf::actor_system> system;
  std::shared_ptr<blocking_detector> detector;
  blocking_detector* joining_detector = nullptr;
  shutdown_report report;
  bool done = false;

  /// Detached actors other than CAF's own. Call with `mtx` held (or from
  /// the `weave-shutdown` thread while it owns `system`).
  size_t detached_locked() const;

  /// Adds one step's counts to the report.
  void add(const shutdown_report& part);

  /// Records how long a phase took, since `t0`.
  void add_phase(const char* name, steady_clock::time_point t0);

  /// The threads left behind, as seen by a caller that gave up on the
  /// `weave-shutdown` thread (which counts as one of them). Call with `mtx`
  /// held.
  size_t threads_left_locked() const;
};

/// Runs the phases; on the `weave-shutdown` thread.
void run_phases(shutdown_job& job);

/// Drops the calling thread's reference to `sys`'s logger, if it holds one
/// (see shutdown_job.cpp).
void release_logger(caf::actor_system& sys);

} // namespace weave::internal
