#include "runtime/runtime.hpp"

#include <algorithm>
#include <cstdio>
#include <thread>
#include <typeinfo>
#include <vector>

#include "caf/thread_hook.hpp"

#include "runtime/internal/blocker_set.hpp"
#include "runtime/internal/blocking_detector.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/deadline_timer.hpp"
#include "runtime/internal/metrics_clock.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/internal/shutdown_job.hpp"
#include "runtime/internal/spawn_guard.hpp"
#include "runtime/internal/thread_activity.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/internal/watched_policy.hpp"
#include "runtime/this_thread.hpp"

namespace weave {

namespace {

using namespace std::chrono_literals;

/// How long past the deadline a shutdown waits for its `weave-shutdown`
/// thread before giving up on it: part of the margin (joining CAF's threads
/// takes well under this, also under sanitizers on a loaded machine); the
/// rest is slack for the caller itself, whose wake-up alone took 130 ms on
/// an overloaded 2-core machine.
constexpr caf::timespan runner_patience = runtime::shutdown_margin * 3 / 5;

/// Names CAF's threads, marks the ones that must never block, counts all.
class thread_hook final : public caf::thread_hook {
public:
  void init(caf::actor_system& sys) override {
    owner_ = &sys.config();
    has_detector_ = internal::detector_of(sys) != nullptr;
  }

  void thread_started() override {
    internal::census_thread_started();
    // CAF 0.17.6 names its threads before calling the hook: scheduler
    // workers "caf.multiplexer", the timer "caf.clock", detached actors
    // "caf.actor" (weave renames its own detached actors when they start).
    // CAF 0.17.6 gives that name to the middleman's I/O thread too. With
    // the blocking detector, a scheduler worker names itself after its
    // index and takes the scheduler role when it binds its detector slot
    // (watched_policy.hpp), before it runs anything; so each such thread
    // starts as the middleman's I/O thread, and workers correct that. Both
    // must never block: a blocked I/O thread stalls every connection.
    auto os = internal::this_thread_os_name();
    auto role = internal::thread_role::actor;
    if (os == "caf.multiplexer") {
      if (has_detector_) {
        set_this_thread_name("weave-middleman");
        role = internal::thread_role::service;
      } else {
        set_this_thread_name("weave-sched-" + std::to_string(next_worker_++));
        role = internal::thread_role::scheduler;
      }
      internal::set_this_thread_must_not_block(true);
    } else if (os == "caf.clock") {
      set_this_thread_name("weave-clock");
      internal::set_this_thread_must_not_block(true);
      role = internal::thread_role::clock;
    }
    // A record of what the thread does, for thread dumps.
    internal::enter_thread_activity(owner_, role, this_thread_name());
  }

  void thread_terminates() override {
    internal::leave_thread_activity();
    internal::census_thread_ended();
  }

private:
  const caf::actor_system_config* owner_ = nullptr;
  bool has_detector_ = false;
  std::atomic<size_t> next_worker_{0};
};

/// On a `weave-shutdown` thread: the runtime it shuts down (compared, never
/// dereferenced), so that a continuation it runs may call shutdown again.
thread_local const runtime* tl_shutting_down = nullptr;

/// How long the constructor waits for CAF's threads to enter the dump
/// registry (they take microseconds; this bounds a pathological machine).
constexpr auto core_threads_patience = 5s;

} // namespace

runtime::runtime(runtime_config cfg)
  : config_(std::make_shared<runtime_config>(std::move(cfg))) {
  start();
}

runtime::runtime(int argc, char** argv)
  : config_(std::make_shared<runtime_config>()) {
  if (auto err = config_->parse(argc, argv))
    raise(std::move(err));
  start();
}

void runtime::start() {
  if (auto err = config_->validate())
    raise(std::move(err));
  config_->owner_.store(this, std::memory_order_release);
  config_->add_thread_hook<thread_hook>();
  config_->add_error_category(error_category,
                              [](uint8_t code, caf::atom_value category,
                                 const caf::message& ctx) {
                                return render(caf::error{code, category, ctx});
                              });
  internal::set_spin_duration(config_->spin());
  internal::metrics_clock::calibrate();
  if (caf::get_or(*config_, "scheduler.policy", caf::atom("stealing"))
      == caf::atom("stealing")) {
    // CAF's work stealing, plus the blocking detector's hooks.
    auto workers = caf::get_or(
      *config_, "scheduler.max-threads",
      static_cast<size_t>(std::max(std::thread::hardware_concurrency(), 4u)));
    detector_ = std::make_shared<internal::blocking_detector>(
      workers, config_->blocking_threshold());
    config_->detector_ = detector_.get();
    config_->module_factories.push_back(&internal::make_watched_scheduler);
  }
  components_ = std::make_shared<internal::component_registry>();
  system_ = std::make_unique<caf::actor_system>(*config_);
  // CAF's scheduler workers and its clock thread enter the dump registry
  // when they first run, which may be after the constructor returned: wait
  // for them (microseconds; bounded, a dump is not worth a hang), so that a
  // dump taken now lists every thread the runtime has.
  // (CAF's test scheduler has no threads.)
  if (caf::get_or(*config_, "scheduler.policy", caf::atom("stealing"))
      != caf::atom("testing"))
    internal::wait_for_thread_roles(
      static_cast<const caf::actor_system_config*>(config_.get()),
      system_->scheduler().num_workers(), 1,
      std::chrono::steady_clock::now() + core_threads_patience);
  caf_detached_ = system_->detached_actors();
  internal::release_logger(*system_);
  live_system_.store(system_.get(), std::memory_order_release);
  blockers_ = std::make_shared<internal::blocker_set>(*system_);
  components_->add(blockers_);
  timer_ = std::make_shared<internal::deadline_timer>(*system_);
  components_->add(timer_);
  default_pool_ = std::make_unique<blocking_pool>(*this, config_->pool_size(),
                                                  "weave-pool");
  if (detector_) {
    auto owner = static_cast<const caf::actor_system_config*>(config_.get());
    if (config_->dump_on_slow_handler())
      detector_->set_dump([owner] { return internal::take_thread_dump(owner); });
    detector_->start(owner);
  }
}

void runtime::raise_shut_down() {
  raise(make_error(errc::shut_down, "the runtime is shut down"));
}

caf::actor_system& runtime::system() {
  auto sys = live_system_.load(std::memory_order_acquire);
  if (sys == nullptr)
    raise_shut_down();
  return *sys;
}

thread_dump runtime::dump() const {
  return internal::take_thread_dump(
    static_cast<const caf::actor_system_config*>(config_.get()));
}

size_t runtime::slow_handlers() const noexcept {
  return detector_ ? detector_->reports() : 0;
}

void runtime::on_slow_handler(
  std::function<void(const slow_handler_event&)> handler) {
  if (detector_)
    detector_->set_handler(std::move(handler));
}

runtime::~runtime() {
  auto report = shutdown();
  (void) report;
  // The shutdown stopped the default pool (or gave up on it): destroying
  // the handle must not wait for it again.
  if (default_pool_)
    internal::runtime_access::disown(*default_pool_);
  config_->retired_.store(true, std::memory_order_release);
  config_->owner_.store(nullptr, std::memory_order_release);
}

runtime& runtime::from(caf::actor_system& sys) {
  // A hot path (every default-pool offload): an exact type match costs a
  // pointer comparison; subclasses of runtime_config take the slow path.
  auto& base = sys.config();
  auto cfg = typeid(base) == typeid(runtime_config)
               ? static_cast<const runtime_config*>(&base)
               : dynamic_cast<const runtime_config*>(&base);
  auto owner = cfg != nullptr ? cfg->owner_.load(std::memory_order_acquire)
                              : nullptr;
  if (owner != nullptr)
    return *owner;
  if (cfg != nullptr && cfg->retired_.load(std::memory_order_acquire))
    raise(make_error(errc::shut_down,
                     "the weave::runtime of this actor system is destroyed "
                     "(an actor its shutdown abandoned is still running)"));
  raise(make_error(errc::invalid_argument,
                   "this actor system was not created by a weave::runtime"));
}

shutdown_report runtime::shutdown() {
  return shutdown(config_->shutdown_deadline());
}

shutdown_report runtime::shutdown(caf::timespan deadline) {
  if (deadline < caf::timespan::zero())
    raise(make_error(errc::invalid_argument,
                     "runtime::shutdown: negative deadline"));
  {
    std::unique_lock<std::mutex> guard{shutdown_mtx_};
    if (shutdown_done_ || tl_shutting_down == this)
      return {};
    if (shutdown_started_) {
      shutdown_cv_.wait(guard, [this] { return shutdown_done_; });
      return {};
    }
    shutdown_started_ = true;
  }
  return run_shutdown(deadline);
}

bool runtime::claim_shutdown() {
  std::unique_lock<std::mutex> guard{shutdown_mtx_};
  if (shutdown_done_ || shutdown_started_ || tl_shutting_down == this)
    return false;
  shutdown_started_ = true;
  return true;
}

shutdown_report runtime::run_shutdown(caf::timespan deadline) {
  auto job = std::make_shared<internal::shutdown_job>();
  job->start = internal::steady_clock::now();
  job->until = internal::saturating_add(job->start, deadline);
  // Phase 1: from here on, registering a component fails (atomically with
  // taking the list), and so does system().
  shutting_down_.store(true, std::memory_order_release);
  live_system_.store(nullptr, std::memory_order_release);
  job->components = components_->close();
  job->config = config_;
  job->system = std::move(system_);
  job->detector = detector_;
  job->caf_detached = caf_detached_;
  // The phases destroy the actor system on another thread.
  internal::release_logger(*job->system);
  internal::census_thread_started();
  auto body = [job, self = this] {
    tl_shutting_down = self;
    internal::run_phases(*job);
    tl_shutting_down = nullptr;
    internal::census_thread_ended();
  };
  std::thread runner;
  try {
    runner = std::thread{body};
  } catch (...) {
    body(); // no thread to spare: run the phases here, unbounded
  }
  shutdown_report report;
  bool finished = false;
  {
    std::unique_lock<std::mutex> guard{job->mtx};
    finished = job->cv.wait_until(
      guard, internal::saturating_add(job->until, runner_patience),
      [&] { return job->done; });
    report = job->report;
    if (!finished) {
      report.threads_abandoned = job->threads_left_locked();
      report.total = internal::steady_clock::now() - job->start;
    }
  }
  if (runner.joinable()) {
    if (finished)
      runner.join();
    else
      runner.detach(); // owns everything it touches (`job`)
  }
  {
    // Notified under the lock: a caller waiting above may return and
    // destroy the runtime (its condition variable too) once it sees
    // `shutdown_done_`, so nothing of `this` is touched after the unlock.
    std::unique_lock<std::mutex> guard{shutdown_mtx_};
    shutdown_done_ = true;
    shutdown_cv_.notify_all();
  }
  if (!report.empty())
    std::fprintf(stderr, "%s\n", report.to_string().c_str());
  return report;
}

// -- runtime_access -----------------------------------------------------------

namespace internal {

blocking_detector* runtime_access::detector(runtime& rt) noexcept {
  return rt.detector_.get();
}

void runtime_access::register_component(runtime& rt, component_ptr c) {
  if (!rt.components_->add(c))
    runtime::raise_shut_down();
}

void runtime_access::start_component(
  runtime& rt, component_ptr c,
  const std::function<void(caf::actor_system&)>& start) {
  // The system stays alive until every component registered before the
  // registry closed has been stopped.
  auto sys = rt.live_system_.load(std::memory_order_acquire);
  spawn_guard sg;
  if (sys == nullptr || !rt.components_->add(c, [&] { start(*sys); }))
    runtime::raise_shut_down();
}

blocker_set& runtime_access::blockers(runtime& rt) {
  return *rt.blockers_;
}

std::shared_ptr<deadline_timer> runtime_access::timer(runtime& rt) {
  return rt.timer_;
}

void runtime_access::keep_with_system(runtime& rt, std::shared_ptr<void> obj) {
  auto& kept = *rt.config_->kept_;
  std::unique_lock<std::mutex> guard{kept.mtx};
  kept.items.push_back(std::move(obj));
}

bool runtime_access::claim_shutdown(runtime& rt) {
  return rt.claim_shutdown();
}

shutdown_report runtime_access::run_claimed_shutdown(runtime& rt) {
  return rt.run_shutdown(rt.config_->shutdown_deadline());
}

} // namespace internal

} // namespace weave
