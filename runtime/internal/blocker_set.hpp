#pragma once

// Internal: the blockers (spawn_blocker) of a runtime: starts each on a
// detached actor of its own, and at shutdown waits for them until the
// deadline, then abandons the rest.
//
// An abandoned blocker is treated like an abandoned pool job: its caller
// hears `shut_down` at the deadline (not whenever the function returns), the
// thread is left to finish and counted, and a result that arrives later is
// dropped and counted (`thread_census::late_results_dropped()`). Whoever
// takes a blocker's entry out of the table (the blocker when its function
// returns, or shutdown at the deadline) decides how its job ends.
//
// Locking: one mutex guards the table and the counts; a blocker is spawned
// under it (a spawn runs no user code), so shutdown, which closes the set
// under the same lock, never misses one. No user code runs under it:
// abandoned jobs are answered (their continuations run) and released after
// unlocking.

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "caf/actor.hpp"
#include "caf/fwd.hpp"

#include "runtime/internal/component.hpp"
#include "runtime/internal/job.hpp"

namespace weave::internal {

class blocker_set : public component,
                    public std::enable_shared_from_this<blocker_set> {
public:
  explicit blocker_set(caf::actor_system& sys) : sys_(sys) {
    // nop
  }

  shutdown_phase phase() const noexcept override {
    return shutdown_phase::blockers;
  }

  /// Runs `j` on a new detached actor named `name` and returns its handle;
  /// an invalid handle (nothing started) once shutdown has begun.
  caf::actor launch(job_ptr j, std::string name);

  /// Refuses new blockers and asks the running ones that take a stop
  /// token to stop (cause `shut_down`).
  void begin_shutdown(shutdown_report&) override {
    std::vector<job_ptr> running;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      closed_ = true;
      try {
        for (auto& kvp : running_)
          running.push_back(kvp.second);
      } catch (...) {
        // Out of memory: the deadline still bounds them.
      }
    }
    for (auto& j : running)
      j->stop_running(errc::shut_down);
    // The references go here, after unlocking.
  }

  void finish_shutdown(steady_clock::time_point deadline,
                       shutdown_report& report) override;

  /// Counts the blockers running now (threads by role).
  void collect_metrics(metrics_snapshot& out) const override;

private:
  /// Runs on the blocker's own thread.
  void run(uint64_t id, const job_ptr& j, caf::blocking_actor* self,
           const std::string& name);

  caf::actor_system& sys_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  // Running blockers that nobody abandoned yet, by id.
  std::unordered_map<uint64_t, job_ptr> running_;
  uint64_t next_id_ = 0;
  size_t live_ = 0;
  size_t started_ = 0;
  bool closed_ = false;
};

} // namespace weave::internal
