#include "runtime/internal/shutdown_job.hpp"

#include <chrono>
#include <thread>

#include "caf/actor_registry.hpp"
#include "caf/actor_system.hpp"
#include "caf/logger.hpp"

#include "runtime/internal/thread_activity.hpp"
#include "runtime/this_thread.hpp"

namespace weave::internal {

namespace {

using namespace std::chrono_literals;

/// How often shutdown looks at the number of running user actors and
/// detached threads.
constexpr auto actor_poll_interval = 1ms;

/// How long past the deadline the shutdown waits for detached threads that
/// are ending anyway (a timer or an I/O thread woken to stop a moment ago,
/// a pool's idle thread): at a zero deadline they would be counted
/// abandoned and the actor system left in the graveyard for a race of
/// microseconds. A thread stuck in user code still is, 50 ms later.
constexpr auto thread_exit_patience = 50ms;

/// Actor systems (and the configurations they refer to) that had to be left
/// alive because a thread was abandoned; kept reachable on purpose, so that
/// the abandoned thread can still end cleanly (see runtime.hpp, phase 6).
struct abandoned_system {
  std::shared_ptr<runtime_config> config;
  std::unique_ptr<caf::actor_system> system;
  /// Its scheduler workers still write their slots.
  std::shared_ptr<blocking_detector> detector;
};
std::mutex graveyard_mtx;
std::vector<abandoned_system>* graveyard = new std::vector<abandoned_system>;

const char* phase_name(shutdown_phase p) {
  switch (p) {
    case shutdown_phase::loops:
      return "loops";
    case shutdown_phase::channels:
      return "channels";
    case shutdown_phase::pools:
      return "pools";
    case shutdown_phase::blockers:
      return "blockers";
  }
  return "?";
}

/// Adds the counts of `from` to `into` (phases and total excepted).
void add_counts(shutdown_report& into, const shutdown_report& from) {
  into.jobs_completed += from.jobs_completed;
  into.jobs_cancelled += from.jobs_cancelled;
  into.jobs_abandoned += from.jobs_abandoned;
  into.futures_failed += from.futures_failed;
  into.channels_closed += from.channels_closed;
  into.threads_joined += from.threads_joined;
  into.threads_abandoned += from.threads_abandoned;
  into.actors_abandoned += from.actors_abandoned;
  into.workers_quarantined += from.workers_quarantined;
}

} // namespace

size_t shutdown_job::detached_locked() const {
  auto n = system->detached_actors();
  return n > caf_detached ? n - caf_detached : 0;
}

void shutdown_job::add(const shutdown_report& part) {
  std::unique_lock<std::mutex> guard{mtx};
  add_counts(report, part);
}

void shutdown_job::add_phase(const char* name, steady_clock::time_point t0) {
  auto t = steady_clock::now() - t0;
  std::unique_lock<std::mutex> guard{mtx};
  report.phases.emplace_back(name, t);
}

size_t shutdown_job::threads_left_locked() const {
  size_t n = 1;
  if (system != nullptr) {
    n += detached_locked();
  } else if (joining_detector != nullptr) {
    // Stuck destroying the actor system: CAF's scheduler threads that are
    // still inside a resume (user code that never returns). Without a
    // detector they cannot be seen, and are not counted.
    for (size_t i = 0; auto slot = joining_detector->at(i); ++i)
      if (slot->epoch.load(std::memory_order_acquire) % 2 == 1)
        ++n;
  }
  return n;
}

/// Drops the calling thread's reference to `sys`'s logger, if it holds one.
/// CAF 0.17.6 keeps one per thread that constructed the system or a
/// `scoped_actor` (a thread-local), and the actor system's destructor waits
/// until the logger is gone: a thread other than the destroying one that
/// still holds it would hold up the destruction.
void release_logger(caf::actor_system& sys) {
  if (caf::logger::current_logger() == &sys.logger())
    caf::logger::set_current_actor_system(nullptr);
}

/// The phases (see runtime.hpp), on the `weave-shutdown` thread.
void run_phases(shutdown_job& job) {
  set_this_thread_name("weave-shutdown");
  service_thread_scope listed{
    static_cast<const caf::actor_system_config*>(job.config.get()),
    "weave-shutdown"};
  for (auto p : {shutdown_phase::loops,
                 shutdown_phase::channels,
                 shutdown_phase::pools,
                 shutdown_phase::blockers}) {
    auto t0 = steady_clock::now();
    std::vector<component_ptr> items;
    for (auto& c : job.components)
      if (c->phase() == p)
        items.emplace_back(c);
    // One step at a time into the report: if a step never returns (user
    // code), the caller still has the counts of the others.
    for (auto& c : items) {
      shutdown_report part;
      c->begin_shutdown(part);
      job.add(part);
    }
    // Every component's jobs answered and counted first, then the slow
    // steps (stopping worker processes) of those that have some.
    std::vector<component_ptr> tails;
    for (auto& c : items) {
      shutdown_report part;
      if (c->settle_jobs(job.until, part))
        tails.emplace_back(c);
      job.add(part);
    }
    for (auto& c : tails) {
      shutdown_report part;
      c->finish_shutdown(job.until, part);
      job.add(part);
    }
    job.add_phase(phase_name(p), t0);
  }
  // User actors and every detached thread (weave's and the user's): CAF
  // would wait for them forever; weave waits until the deadline.
  auto t0 = steady_clock::now();
  auto& sys = *job.system;
  auto& reg = sys.registry();
  // Threads a component gave up on (stuck in a call that never returns)
  // are not waited for.
  auto given_up = [&job] {
    size_t n = 0;
    for (auto& c : job.components)
      n += c->given_up_threads();
    return n;
  };
  while ((reg.running() > 0 || job.detached_locked() > given_up())
         && steady_clock::now() < job.until)
    std::this_thread::sleep_for(actor_poll_interval);
  for (auto until = steady_clock::now() + thread_exit_patience;
       job.detached_locked() > given_up() && steady_clock::now() < until;)
    std::this_thread::sleep_for(actor_poll_interval);
  for (auto& c : job.components)
    c->release_actors();
  job.components.clear();
  sys.await_actors_before_shutdown(false);
  {
    shutdown_report part;
    part.actors_abandoned = reg.running();
    job.add(part);
  }
  job.add_phase("actors", t0);
  t0 = steady_clock::now();
  std::shared_ptr<blocking_detector> detector;
  {
    std::unique_lock<std::mutex> guard{job.mtx};
    detector = std::move(job.detector);
  }
  if (detector)
    detector->stop();
  std::unique_ptr<caf::actor_system> doomed;
  {
    std::unique_lock<std::mutex> guard{job.mtx};
    // Every thread still running is counted once, from CAF's own count:
    // pool workers, loops, blockers, the timer, and user actors with a
    // thread of their own (each pool or loop counted its own already).
    auto left = job.detached_locked();
    job.report.threads_abandoned = left;
    if (left > 0) {
      std::unique_lock<std::mutex> g{graveyard_mtx};
      graveyard->push_back(
        {job.config, std::move(job.system), detector});
    } else {
      doomed = std::move(job.system);
      job.joining_detector = detector.get();
    }
  }
  // Joins CAF's threads (nothing left to wait for but the scheduler's own).
  doomed.reset();
  {
    std::unique_lock<std::mutex> guard{job.mtx};
    job.joining_detector = nullptr;
  }
  detector.reset();
  job.add_phase("system", t0);
  {
    std::unique_lock<std::mutex> guard{job.mtx};
    job.report.total = steady_clock::now() - job.start;
    job.done = true;
  }
  job.cv.notify_all();
}


} // namespace weave::internal
