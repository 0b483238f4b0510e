#include "runtime/runtime_config.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include "caf/config_option_adder.hpp"
#include "caf/settings.hpp"

#include "runtime/blocking_pool.hpp"
#include "runtime/error.hpp"

namespace weave {

namespace {

using namespace std::chrono_literals;

constexpr caf::timespan default_shutdown_deadline = 5s;
constexpr caf::timespan max_shutdown_deadline = 1h;
constexpr caf::timespan default_spin = 50us;
constexpr caf::timespan max_spin = 10ms;
constexpr caf::timespan default_blocking_threshold = 100ms;
constexpr caf::timespan min_blocking_threshold = 1ms;
constexpr caf::timespan max_blocking_threshold = 1h;

// Scheduler tuning (see the header): a short aggressive burst, then the
// notified condition variable.
constexpr size_t aggressive_poll_attempts = 200;
constexpr size_t moderate_poll_attempts = 0;
constexpr caf::timespan relaxed_sleep_duration = 10s;

constexpr const char* known_options[] = {
  "pool-size",
  "shutdown-deadline",
  "spin",
  "blocking-threshold",
};

caf::error bad(const std::string& name, const std::string& why,
               const char* range) {
  return make_error(errc::invalid_config, "weave." + name + ": " + why
                                            + " (allowed: " + range + ")");
}

template <class T>
caf::error check_type(const caf::settings& weave_group, const char* name,
                      const char* range) {
  auto i = weave_group.find(name);
  if (i == weave_group.end())
    return caf::none;
  if (!caf::holds_alternative<T>(i->second))
    return bad(name, "wrong type: " + caf::to_string(i->second), range);
  return caf::none;
}

caf::error check_timespan(const caf::settings& g, const char* name,
                          caf::timespan lo, caf::timespan hi,
                          const char* range) {
  if (auto err = check_type<caf::timespan>(g, name, range))
    return err;
  auto i = g.find(name);
  if (i == g.end())
    return caf::none;
  auto value = caf::get<caf::timespan>(i->second);
  if (value < lo || value > hi)
    return bad(name, caf::to_string(i->second) + " is out of range", range);
  return caf::none;
}

} // namespace

size_t runtime_config::default_pool_size() {
  size_t cores = std::max(1u, std::thread::hardware_concurrency());
  return std::min<size_t>(32, cores + 4);
}

runtime_config::runtime_config() {
  opt_group{custom_options_, "weave"}
    .add<size_t>("pool-size", "threads of the default blocking pool")
    .add<caf::timespan>("shutdown-deadline",
                        "how long shutdown waits for running jobs")
    .add<caf::timespan>("spin", "how long idle workers and waiters spin "
                                "before parking")
    .add<caf::timespan>("blocking-threshold",
                        "report handlers that hold a scheduler thread longer");
  set("weave.pool-size", default_pool_size());
  set("weave.shutdown-deadline", default_shutdown_deadline);
  set("weave.spin", default_spin);
  set("weave.blocking-threshold", default_blocking_threshold);
  set("scheduler.policy", caf::atom("stealing"));
  // One scheduler thread per core: weave keeps blocking off the scheduler,
  // so CAF's minimum of 4 would only oversubscribe small machines.
  set("scheduler.max-threads",
      static_cast<size_t>(std::max(1u, std::thread::hardware_concurrency())));
  set("work-stealing.aggressive-poll-attempts", aggressive_poll_attempts);
  set("work-stealing.moderate-poll-attempts", moderate_poll_attempts);
  set("work-stealing.relaxed-sleep-duration", relaxed_sleep_duration);
}

caf::error runtime_config::parse(int argc, char** argv) {
  if (auto err = caf::actor_system_config::parse(argc, argv)) {
    if (err.category() == caf::atom("parser"))
      return make_error(errc::invalid_config,
                        "cannot parse the configuration: "
                          + caf::to_string(err));
    return err;
  }
  bool positional = false;
  for (auto& arg : remainder) {
    if (arg.compare(0, 8, "--weave.") == 0) {
      auto name = arg.substr(8, arg.find('=') - 8);
      auto known = std::any_of(std::begin(known_options),
                               std::end(known_options),
                               [&](const char* o) { return name == o; });
      if (known && positional)
        return make_error(errc::invalid_config,
                          "option " + arg + " comes after a positional "
                            + "argument, where CAF stops reading options: "
                            + "put options first");
      return make_error(errc::invalid_config, "unknown option " + arg);
    }
    if (arg.compare(0, 1, "-") != 0)
      positional = true;
  }
  return validate();
}

caf::error runtime_config::validate() const {
  auto i = content.find("weave");
  if (i == content.end() || !caf::holds_alternative<caf::settings>(i->second))
    return make_error(errc::invalid_config, "the weave group is missing");
  auto& g = caf::get<caf::settings>(i->second);
  for (auto& kvp : g) {
    auto known = std::any_of(std::begin(known_options), std::end(known_options),
                             [&](const char* o) { return kvp.first == o; });
    if (!known) {
      std::string names;
      for (auto o : known_options)
        names += names.empty() ? o : std::string{", "} + o;
      return make_error(errc::invalid_config, "unknown option weave."
                                                + kvp.first + " (known: "
                                                + names + ")");
    }
  }
  // The pool's own limit, so that both checks agree.
  auto max_pool = blocking_pool::max_pool_size;
  auto pool_range = "1.." + std::to_string(max_pool);
  if (auto err = check_type<int64_t>(g, "pool-size", pool_range.c_str()))
    return err;
  if (auto n = caf::get<int64_t>(g, "pool-size");
      n < 1 || n > static_cast<int64_t>(max_pool))
    return bad("pool-size", std::to_string(n) + " is out of range",
               pool_range.c_str());
  if (auto err = check_timespan(g, "shutdown-deadline", caf::timespan{0},
                                max_shutdown_deadline, "0s..1h"))
    return err;
  if (auto err = check_timespan(g, "spin", caf::timespan{0}, max_spin,
                                "0us..10ms"))
    return err;
  if (auto err = check_timespan(g, "blocking-threshold",
                                min_blocking_threshold, max_blocking_threshold,
                                "1ms..1h"))
    return err;
  return caf::none;
}

size_t runtime_config::pool_size() const {
  return caf::get_or(content, "weave.pool-size", default_pool_size());
}

caf::timespan runtime_config::shutdown_deadline() const {
  return caf::get_or(content, "weave.shutdown-deadline",
                     default_shutdown_deadline);
}

caf::timespan runtime_config::spin() const {
  return caf::get_or(content, "weave.spin", default_spin);
}

caf::timespan runtime_config::blocking_threshold() const {
  return caf::get_or(content, "weave.blocking-threshold",
                     default_blocking_threshold);
}

} // namespace weave
