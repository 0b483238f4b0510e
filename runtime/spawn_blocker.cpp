#include "runtime/spawn_blocker.hpp"

#include "caf/spawn_options.hpp"

#include "runtime/internal/blocker_set.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/internal/spawn_guard.hpp"
#include "runtime/internal/thread_activity.hpp"
#include "runtime/internal/thread_roles.hpp"

namespace weave::internal {

caf::actor blocker_set::launch(job_ptr j, std::string name) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (closed_)
    return {};
  auto id = next_id_++;
  running_.emplace(id, j);
  ++live_;
  ++started_;
  auto self = shared_from_this();
  spawn_guard sg;
  return sys_.spawn<caf::hidden>(
    [self, id, j = std::move(j), name = std::move(name)](
      caf::blocking_actor* ptr) { self->run(id, j, ptr, name); });
}

void blocker_set::run(uint64_t id, const job_ptr& j, caf::blocking_actor* self,
                      const std::string& name) {
  set_this_thread_name(name);
  set_thread_role(thread_role::blocker);
  auto activity = this_thread_activity(); // for thread dumps
  if (activity != nullptr)
    activity->begin_job(*j);
  auto started = j->try_start(); // false: cancelled before it started
  if (started) {
    // A shutdown that began before this thread claimed the job found it not
    // running and could not stop it: the stop is requested here.
    bool closed = false;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      closed = closed_;
    }
    if (closed)
      j->stop_running(errc::shut_down);
  }
  auto ok = started ? j->run() : true;
  if (activity != nullptr)
    activity->end_job(thread_state::unknown);
  job_ptr entry; // released after unlocking
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (auto i = running_.find(id); i != running_.end()) {
      entry = std::move(i->second);
      running_.erase(i);
    }
  }
  if (!ok)
    self->fail_state(j->failure);
  if (entry != nullptr) {
    if (started)
      j->deliver();
  } else if (started) {
    // Shutdown abandoned it at its deadline and told the caller.
    census_late_result_dropped();
  }
  std::unique_lock<std::mutex> guard{mtx_};
  if (--live_ == 0)
    cv_.notify_all();
}

void blocker_set::finish_shutdown(steady_clock::time_point deadline,
                                  shutdown_report& report) {
  std::vector<job_ptr> abandoned;
  size_t live = 0;
  size_t started = 0;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait_until(guard, deadline, [this] { return live_ == 0; });
    for (auto& kvp : running_)
      abandoned.emplace_back(std::move(kvp.second));
    running_.clear();
    live = live_;
    started = started_;
  }
  for (auto& j : abandoned) {
    // One whose thread has not started it yet never will: cancel it, so
    // the caller's `shut_down` is the whole story. A running one is
    // abandoned: its caller hears `shut_down` now, its late result is
    // dropped and counted.
    if (j->cancel_with(make_error(errc::shut_down, "blocker cancelled at the "
                                                   "shutdown deadline")))
      ++report.jobs_cancelled;
    else if (j->drop(make_error(errc::shut_down, "blocker still running at "
                                                 "the shutdown deadline, "
                                                 "abandoned")))
      ++report.jobs_abandoned;
  }
  report.threads_joined += started - live;
  report.threads_abandoned += live;
}

caf::actor launch_blocker(runtime& rt, job_ptr j, std::string name) {
  auto handle = runtime_access::blockers(rt).launch(j, std::move(name));
  if (!handle)
    j->cancel_with(make_error(errc::shut_down, "the runtime is shut down"));
  return handle;
}

} // namespace weave::internal
