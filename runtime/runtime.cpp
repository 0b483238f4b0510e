#include "runtime/runtime.hpp"

#include <algorithm>
#include <cstdio>
#include <thread>
#include <vector>

#include "caf/actor_registry.hpp"
#include "caf/thread_hook.hpp"

#include "runtime/internal/blocker_set.hpp"
#include "runtime/internal/blocking_detector.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/internal/watched_policy.hpp"
#include "runtime/this_thread.hpp"

namespace weave {

namespace {

using namespace std::chrono_literals;

/// How often shutdown looks at the number of running user actors.
constexpr auto actor_poll_interval = 1ms;

/// Names CAF's threads, marks the ones that must never block, counts all.
class thread_hook final : public caf::thread_hook {
public:
  void init(caf::actor_system&) override {
    // nop
  }

  void thread_started() override {
    internal::census_thread_started();
    // CAF 0.17.6 names its threads before calling the hook: scheduler
    // workers "caf.multiplexer", the timer "caf.clock", detached actors
    // "caf.actor" (weave renames its own detached actors when they start).
    auto os = internal::this_thread_os_name();
    if (os == "caf.multiplexer") {
      set_this_thread_name("weave-sched-" + std::to_string(next_worker_++));
      internal::set_this_thread_must_not_block(true);
    } else if (os == "caf.clock") {
      set_this_thread_name("weave-clock");
      internal::set_this_thread_must_not_block(true);
    }
  }

  void thread_terminates() override {
    internal::census_thread_ended();
  }

private:
  std::atomic<size_t> next_worker_{0};
};

/// Actor systems (and the configurations they refer to) that had to be left
/// alive because a thread was abandoned; kept reachable on purpose, so that
/// the abandoned thread can still end cleanly (see runtime.hpp, phase 6).
struct abandoned_system {
  std::shared_ptr<runtime_config> config;
  std::unique_ptr<caf::actor_system> system;
  /// Its scheduler workers still write their slots.
  std::unique_ptr<internal::blocking_detector> detector;
};
std::mutex graveyard_mtx;
std::vector<abandoned_system>* graveyard = new std::vector<abandoned_system>;

const char* phase_name(internal::shutdown_phase p) {
  switch (p) {
    case internal::shutdown_phase::loops:
      return "loops";
    case internal::shutdown_phase::channels:
      return "channels";
    case internal::shutdown_phase::pools:
      return "pools";
    case internal::shutdown_phase::blockers:
      return "blockers";
  }
  return "?";
}

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
  config_->owner_ = this;
  config_->add_thread_hook<thread_hook>();
  config_->add_error_category(error_category,
                              [](uint8_t code, caf::atom_value category,
                                 const caf::message& ctx) {
                                return render(caf::error{code, category, ctx});
                              });
  internal::set_spin_duration(config_->spin());
  if (caf::get_or(*config_, "scheduler.policy", caf::atom("stealing"))
      == caf::atom("stealing")) {
    // CAF's work stealing, plus the blocking detector's hooks.
    auto workers = caf::get_or(
      *config_, "scheduler.max-threads",
      static_cast<size_t>(std::max(std::thread::hardware_concurrency(), 4u)));
    detector_ = std::make_unique<internal::blocking_detector>(
      workers, config_->blocking_threshold());
    config_->detector_ = detector_.get();
    config_->module_factories.push_back(&internal::make_watched_scheduler);
  }
  components_ = std::make_unique<internal::component_registry>();
  blockers_ = std::make_shared<internal::blocker_set>();
  components_->add(blockers_);
  system_ = std::make_unique<caf::actor_system>(*config_);
  if (detector_)
    detector_->start();
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
  config_->owner_ = nullptr;
}

runtime& runtime::from(caf::actor_system& sys) {
  auto cfg = dynamic_cast<const runtime_config*>(&sys.config());
  if (cfg == nullptr || cfg->owner_ == nullptr)
    raise(make_error(errc::invalid_argument,
                     "this actor system was not created by a weave::runtime"));
  return *cfg->owner_;
}

blocking_pool& runtime::default_pool() {
  std::unique_lock<std::mutex> guard{pool_mtx_};
  if (!default_pool_) {
    if (shutting_down())
      raise(make_error(errc::shut_down, "the runtime is shut down"));
    default_pool_ = std::make_unique<blocking_pool>(*this, config_->pool_size(),
                                                    "weave-pool");
  }
  return *default_pool_;
}

void runtime::register_component(std::shared_ptr<internal::component> c) {
  if (shutting_down()) {
    // Too late to be stopped by us: stop it right away.
    shutdown_report ignored;
    c->begin_shutdown(ignored);
    return;
  }
  components_->add(std::move(c));
}

shutdown_report runtime::shutdown() {
  return shutdown(config_->shutdown_deadline());
}

shutdown_report runtime::shutdown(caf::timespan deadline) {
  std::unique_lock<std::mutex> guard{shutdown_mtx_};
  shutdown_report report;
  if (shut_down_)
    return report;
  shut_down_ = true;
  shutting_down_.store(true, std::memory_order_release);
  auto start = internal::steady_clock::now();
  auto until = start + deadline;
  for (auto p : {internal::shutdown_phase::loops,
                 internal::shutdown_phase::channels,
                 internal::shutdown_phase::pools,
                 internal::shutdown_phase::blockers}) {
    auto t0 = internal::steady_clock::now();
    auto items = components_->snapshot(p);
    for (auto& c : items)
      c->begin_shutdown(report);
    for (auto& c : items)
      c->finish_shutdown(until, report);
    report.phases.emplace_back(phase_name(p),
                               internal::steady_clock::now() - t0);
  }
  // User actors: CAF would wait for them forever; weave waits until the
  // deadline and then lets the scheduler drop them.
  auto t0 = internal::steady_clock::now();
  auto& reg = system_->registry();
  while (reg.running() > 0 && internal::steady_clock::now() < until)
    std::this_thread::sleep_for(actor_poll_interval);
  if (auto n = reg.running(); n > 0) {
    report.actors_abandoned = n;
    system_->await_actors_before_shutdown(false);
  }
  report.phases.emplace_back("actors", internal::steady_clock::now() - t0);
  t0 = internal::steady_clock::now();
  if (detector_)
    detector_->stop();
  if (report.threads_abandoned == 0) {
    system_.reset();
  } else {
    std::unique_lock<std::mutex> g{graveyard_mtx};
    graveyard->push_back({config_, std::move(system_), std::move(detector_)});
  }
  report.phases.emplace_back("system", internal::steady_clock::now() - t0);
  report.total = internal::steady_clock::now() - start;
  if (!report.empty())
    std::fprintf(stderr, "%s\n", report.to_string().c_str());
  return report;
}

} // namespace weave
