#pragma once

// Internal: what weave's own code needs from a `runtime` and a
// `blocking_pool` beyond their public API (a friend of both). Users never
// include this header.

#include <functional>
#include <memory>
#include <utility>

#include "caf/fwd.hpp"

#include "runtime/blocking_pool.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/runtime.hpp"

namespace weave::internal {

class blocker_set;
class blocking_detector;
class deadline_timer;

struct runtime_access {
  /// The blocking detector, or null (with a non-weave scheduler).
  static blocking_detector* detector(runtime& rt) noexcept;

  /// Registers `c` to be stopped at shutdown. Atomic with shutdown: throws
  /// `shut_down` (and `c` is not registered) once shutdown has begun, so a
  /// registered component is never missed.
  static void register_component(runtime& rt, component_ptr c);

  /// Like `register_component`, but first runs `start` with the actor
  /// system, under the same lock: a component is started only if shutdown
  /// will stop it. `start` must not run user code.
  static void start_component(runtime& rt, component_ptr c,
                              const std::function<void(caf::actor_system&)>& start);

  /// The blockers started by `spawn_blocker`.
  static blocker_set& blockers(runtime& rt);

  /// The runtime's deadline timer (timed submits).
  static std::shared_ptr<deadline_timer> timer(runtime& rt);

  /// Keeps `obj` alive as long as `rt`'s actor system (with its
  /// configuration, which outlives the system even when the shutdown
  /// leaves it in the graveyard).
  static void keep_with_system(runtime& rt, std::shared_ptr<void> obj);

  /// Starts `rt`'s shutdown only if none began (or ended): true, and the
  /// caller must then call `run_claimed_shutdown`. False if another began:
  /// this caller neither waits for it nor may touch `rt` again unless it
  /// knows `rt` is alive. For a thread the shutdown does not wait for when
  /// it started it (the signal actor's).
  static bool claim_shutdown(runtime& rt);

  /// The claimed shutdown, with `rt`'s configured deadline.
  static shutdown_report run_claimed_shutdown(runtime& rt);

  /// Queues `j` on `pool` (offload's way in).
  static void enqueue(blocking_pool& pool, job_ptr j, uint64_t key,
                      bool timed = false) {
    pool.enqueue(std::move(j), timed, key);
  }

  /// Makes destroying `pool` leave its shutdown to the runtime (the
  /// runtime's own default pool, which its shutdown stops).
  static void disown(blocking_pool& pool) noexcept {
    pool.owning_ = false;
  }

  /// A handle on the same pool that does not shut it down when destroyed,
  /// for whatever must not dangle if the pool object goes first (a file
  /// actor): once the pool is shut down, jobs queued through it are answered
  /// with `shut_down`.
  static std::shared_ptr<blocking_pool> share(const blocking_pool& pool) {
    return std::shared_ptr<blocking_pool>{
      new blocking_pool(pool.impl_, pool.shutdown_deadline_, false)};
  }
};

} // namespace weave::internal
