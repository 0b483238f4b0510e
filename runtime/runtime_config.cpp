#include "runtime/runtime_config.hpp"

#include <algorithm>
#include <chrono>
#include <thread>
#include <type_traits>
#include <utility>

#include "caf/config_option_adder.hpp"
#include "caf/pec.hpp"
#include "caf/sec.hpp"
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
constexpr caf::timespan default_cancel_grace = 100ms;
constexpr caf::timespan max_cancel_grace = 1h;
constexpr size_t default_max_quarantined = 4;
constexpr size_t default_tcp_inline_turns = 8;
constexpr size_t max_tcp_inline_turns = 1024;
constexpr const char* default_tcp_gather = "auto";

// Scheduler tuning (see the header): a short aggressive burst, then the
// notified condition variable.
constexpr size_t aggressive_poll_attempts = 200;
constexpr size_t moderate_poll_attempts = 0;
constexpr caf::timespan relaxed_sleep_duration = 10s;

/// weave's options and what kind of value each takes.
struct option_info {
  const char* name;
  const char* takes;
};

constexpr option_info known_options[] = {
  {"pool-size", "a number of threads, e.g. 8"},
  {"shutdown-deadline", "a duration, e.g. 250ms"},
  {"spin", "a duration, e.g. 50us"},
  {"blocking-threshold", "a duration, e.g. 100ms"},
  {"cancel-grace", "a duration, e.g. 100ms"},
  {"max-quarantined", "a number of threads, e.g. 4"},
  {"dump-on-slow-handler",
   "no value (a flag) on the command line, true or false in a config file"},
  {"tcp-inline-turns", "a number of actor turns, e.g. 8"},
  {"tcp-gather", "auto, always or never"},
};

/// The prefix of weave's options on the command line.
constexpr caf::string_view weave_cli_prefix = "--weave.";

/// The option called `name` (without "weave."), or null.
const option_info* find_option(caf::string_view name) {
  for (auto& o : known_options)
    if (name == o.name)
      return &o;
  return nullptr;
}

bool is_known(caf::string_view name) {
  return find_option(name) != nullptr;
}

/// "unknown option weave.<name> (known: weave.pool-size, ...)".
caf::error unknown_weave_option(caf::string_view name) {
  std::string msg = "unknown option weave.";
  msg.append(name.begin(), name.end());
  msg += " (known: ";
  bool first = true;
  for (auto& o : known_options) {
    if (!first)
      msg += ", ";
    first = false;
    msg += "weave.";
    msg += o.name;
  }
  msg += ")";
  return make_error(errc::invalid_config, std::move(msg));
}

/// The weave option `arg` names ("--weave.spin=0us" -> "spin"), or "" if it
/// is not a weave option.
caf::string_view weave_option_name(caf::string_view arg) {
  if (arg.compare(0, weave_cli_prefix.size(), weave_cli_prefix) != 0)
    return {};
  arg.remove_prefix(weave_cli_prefix.size());
  return arg.substr(0, arg.find('='));
}

/// A duration as it would be written in a config: "-1s", "1500ms", "0s".
/// (CAF 0.17.6 prints every negative timespan as "0d".)
std::string duration_text(caf::timespan d) {
  struct unit {
    int64_t ns;
    const char* suffix;
  };
  static constexpr unit units[] = {
    {int64_t{3600} * 1'000'000'000, "h"},
    {int64_t{60} * 1'000'000'000, "min"},
    {1'000'000'000, "s"},
    {1'000'000, "ms"},
    {1'000, "us"},
    {1, "ns"},
  };
  auto n = d.count();
  if (n == 0)
    return "0s";
  for (auto& u : units)
    if (n % u.ns == 0)
      return std::to_string(n / u.ns) + u.suffix;
  return std::to_string(n) + "ns"; // unreachable: every count divides by 1
}

caf::error bad(const std::string& name, const std::string& why,
               const char* range) {
  return make_error(errc::invalid_config, "weave." + name + ": " + why
                                            + " (allowed: " + range + ")");
}

/// CAF's own parse errors, in weave's words: `invalid_config` naming the
/// argument (command line) or the place (config file).
caf::error explain_parse_error(caf::error err) {
  auto& ctx = err.context();
  if (err.category() == caf::atom("parser")) {
    auto code = static_cast<caf::pec>(err.code());
    // A command-line argument CAF could not take comes as {"argument" = x}.
    std::string arg;
    if (ctx.match_elements<caf::settings>())
      arg = caf::get_or(ctx.get_as<caf::settings>(0), "argument", "");
    if (!arg.empty()) {
      auto name = weave_option_name(arg);
      if (code == caf::pec::not_an_option) {
        if (!name.empty() && !is_known(name))
          return unknown_weave_option(name);
        return make_error(errc::invalid_config, "unknown option " + arg);
      }
      auto msg = "cannot parse option " + arg + ": " + caf::to_string(code);
      if (auto opt = find_option(name)) {
        msg += " (weave.";
        msg += opt->name;
        msg += " takes ";
        msg += opt->takes;
        msg += ")";
      }
      return make_error(errc::invalid_config, std::move(msg));
    }
    return make_error(errc::invalid_config,
                      "cannot parse the configuration: " + caf::to_string(err));
  }
  if (err == caf::sec::cannot_open_file)
    return make_error(errc::invalid_config,
                      "cannot open the config file "
                        + (ctx.match_elements<std::string>()
                             ? ctx.get_as<std::string>(0)
                             : caf::to_string(ctx)));
  return err;
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
    return bad(name, duration_text(value) + " is out of range", range);
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
                        "report handlers that hold a scheduler thread longer")
    .add<caf::timespan>("cancel-grace",
                        "how long a running job has to honour a stop request")
    .add<size_t>("max-quarantined",
                 "quarantined workers a pool replaces with fresh ones")
    .add<bool>("dump-on-slow-handler",
               "add a thread dump to the blocking detector's reports")
    .add<size_t>("tcp-inline-turns",
                 "actor turns the TCP I/O thread runs itself per readiness")
    .add<std::string>("tcp-gather",
                      "auto, always or never: the TCP I/O thread keeps the "
                      "turns it woke while cores are contended");
  set("weave.pool-size", default_pool_size());
  set("weave.shutdown-deadline", default_shutdown_deadline);
  set("weave.spin", default_spin);
  set("weave.blocking-threshold", default_blocking_threshold);
  set("weave.cancel-grace", default_cancel_grace);
  set("weave.max-quarantined", default_max_quarantined);
  set("weave.dump-on-slow-handler", false);
  set("weave.tcp-inline-turns", default_tcp_inline_turns);
  set("weave.tcp-gather", std::string{default_tcp_gather});
  set("scheduler.policy", caf::atom("stealing"));
  // One scheduler thread per core: weave keeps blocking off the scheduler,
  // so CAF's minimum of 4 would only oversubscribe small machines.
  set("scheduler.max-threads",
      static_cast<size_t>(std::max(1u, std::thread::hardware_concurrency())));
  set("work-stealing.aggressive-poll-attempts", aggressive_poll_attempts);
  set("work-stealing.moderate-poll-attempts", moderate_poll_attempts);
  set("work-stealing.relaxed-sleep-duration", relaxed_sleep_duration);
}

runtime_config::runtime_config(const runtime_config& other)
  : runtime_config() {
  if (!other.thread_hooks_.empty())
    raise(make_error(errc::invalid_argument,
                     "runtime_config: cannot copy a configuration that holds "
                     "thread hooks (CAF owns each uniquely; a runtime adds one "
                     "to the configuration it runs on): move it instead, or "
                     "copy it before adding hooks"));
  adopt(other);
}

runtime_config::runtime_config(runtime_config&& other) : runtime_config() {
  adopt(std::move(other));
}

template <class Config>
void runtime_config::adopt(Config&& other) {
  // `std::forward<Config>(other).x` is `x` moved from a moved configuration
  // and copied from a copied one. The option set is not taken over: ours was
  // built by our constructor, bound to our own members.
  auto&& src = std::forward<Config>(other);
  using src_t = decltype(src);
  auto take = [&](auto member) -> decltype(auto) {
    return std::forward<src_t>(src).*member;
  };
  using base = caf::actor_system_config;
  content = take(&base::content);
  cli_helptext_printed = src.cli_helptext_printed;
  remainder = take(&base::remainder);
  slave_mode = src.slave_mode;
  slave_name = take(&base::slave_name);
  bootstrap_node = take(&base::bootstrap_node);
  stream_desired_batch_complexity = src.stream_desired_batch_complexity;
  stream_max_batch_delay = src.stream_max_batch_delay;
  stream_credit_round_interval = src.stream_credit_round_interval;
  opencl_device_ids = take(&base::opencl_device_ids);
  openssl_certificate = take(&base::openssl_certificate);
  openssl_key = take(&base::openssl_key);
  openssl_passphrase = take(&base::openssl_passphrase);
  openssl_capath = take(&base::openssl_capath);
  openssl_cafile = take(&base::openssl_cafile);
  value_factories_by_name = take(&base::value_factories_by_name);
  value_factories_by_rtti = take(&base::value_factories_by_rtti);
  actor_factories = take(&base::actor_factories);
  module_factories = take(&base::module_factories);
  hook_factories = take(&base::hook_factories);
  group_module_factories = take(&base::group_module_factories);
  if constexpr (!std::is_lvalue_reference<Config>::value)
    thread_hooks_ = std::move(other.thread_hooks_);
  profiler = src.profiler;
  type_names_by_rtti = take(&base::type_names_by_rtti);
  error_renderers = take(&base::error_renderers);
  config_file_path = take(&base::config_file_path);
  named_actor_configs = take(&base::named_actor_configs);
  slave_mode_fun = src.slave_mode_fun;
  // Options a subclass added: those without storage are carried over; those
  // bound to the subclass's members (`get()` reads them) would point into
  // `other`, so they are left behind.
  for (auto& opt : src.custom_options_)
    if (custom_options_.qualified_name_lookup(opt.category(), opt.long_name())
          == nullptr
        && !opt.get())
      custom_options_.add(opt);
  // owner_ and detector_ belong to the runtime running on `other`.
}

caf::error runtime_config::parse(int argc, char** argv) {
  if (auto err = caf::actor_system_config::parse(argc, argv))
    return explain_parse_error(std::move(err));
  // CAF stops reading options at the first positional argument and leaves
  // the rest in `remainder`, where a weave option would be silently ignored.
  bool positional = false;
  for (auto& arg : remainder) {
    auto name = weave_option_name(arg);
    if (!name.empty()) {
      if (!is_known(name))
        return unknown_weave_option(name);
      if (positional)
        return make_error(errc::invalid_config,
                          "option " + arg + " comes after a positional "
                            + "argument, where CAF stops reading options: "
                            + "put options first");
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
  for (auto& kvp : g)
    if (!is_known(kvp.first))
      return unknown_weave_option(kvp.first);
  // The pool's own limit, so that both checks agree.
  auto max_pool = blocking_pool::max_pool_size;
  auto pool_range = "1.." + std::to_string(max_pool);
  auto quarantine_range = "0.." + std::to_string(max_pool);
  auto pool_range_q = quarantine_range.c_str();
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
  if (auto err = check_timespan(g, "cancel-grace", caf::timespan{0},
                                max_cancel_grace, "0s..1h"))
    return err;
  if (auto err = check_type<int64_t>(g, "max-quarantined", pool_range_q))
    return err;
  if (auto n = caf::get<int64_t>(g, "max-quarantined");
      n < 0 || n > static_cast<int64_t>(max_pool))
    return bad("max-quarantined", std::to_string(n) + " is out of range",
               pool_range_q);
  if (auto err = check_type<bool>(g, "dump-on-slow-handler", "true, false"))
    return err;
  if (auto err = check_type<int64_t>(g, "tcp-inline-turns", "0..1024"))
    return err;
  if (auto n = caf::get<int64_t>(g, "tcp-inline-turns");
      n < 0 || n > static_cast<int64_t>(max_tcp_inline_turns))
    return bad("tcp-inline-turns", std::to_string(n) + " is out of range",
               "0..1024");
  if (auto err = check_type<std::string>(g, "tcp-gather",
                                         "auto, always, never"))
    return err;
  if (auto m = caf::get<std::string>(g, "tcp-gather");
      m != "auto" && m != "always" && m != "never")
    return bad("tcp-gather", "\"" + m + "\" is not a mode",
               "auto, always, never");
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

caf::timespan runtime_config::cancel_grace() const {
  return caf::get_or(content, "weave.cancel-grace", default_cancel_grace);
}

bool runtime_config::dump_on_slow_handler() const {
  return caf::get_or(content, "weave.dump-on-slow-handler", false);
}

size_t runtime_config::max_quarantined() const {
  return caf::get_or(content, "weave.max-quarantined",
                     default_max_quarantined);
}

size_t runtime_config::tcp_inline_turns() const {
  return caf::get_or(content, "weave.tcp-inline-turns",
                     default_tcp_inline_turns);
}

std::string runtime_config::tcp_gather() const {
  return caf::get_or(content, "weave.tcp-gather",
                     std::string{default_tcp_gather});
}

} // namespace weave
