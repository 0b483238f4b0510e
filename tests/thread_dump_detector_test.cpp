// weave.dump-on-slow-handler: the blocking detector's report carries a
// thread dump taken while the slow handler still holds its thread.
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::thread_dump;

namespace {

weave::runtime_config config_with(size_t sched_threads) {
  weave::runtime_config cfg;
  cfg.set("scheduler.max-threads", sched_threads);
  return cfg;
}

} // namespace

namespace {

/// A blocking threshold short enough for the test to see a report soon.
constexpr auto short_threshold = caf::timespan{20ms};

/// Runs an actor that holds a scheduler thread until the detector reported
/// it; returns the first report. Shared state: the detector's call and the
/// actor's handler may still be on their way out when this returns.
weave::slow_handler_event hold_until_reported(weave::runtime& rt,
                                              caf::actor_id& id) {
  struct shared {
    weave::test::latch reported{1};
    std::mutex mtx;
    weave::slow_handler_event first;
    bool have = false;
    std::atomic<caf::actor_id> holder{0};
  };
  auto sh = std::make_shared<shared>();
  rt.on_slow_handler([sh](const weave::slow_handler_event& ev) {
    // Only the holder's report: another handler descheduled past the short
    // threshold (a sanitizer on a busy machine) is reported too, rightly.
    if (ev.actor != sh->holder.load())
      return;
    {
      std::unique_lock<std::mutex> guard{sh->mtx};
      if (sh->have)
        return;
      sh->first = ev;
      sh->have = true;
    }
    sh->reported.count_down();
  });
  auto holder = rt.system().spawn([sh](caf::event_based_actor*) -> caf::behavior {
    return {[sh](int) { sh->reported.wait(); }}; // holds it until reported
  });
  id = holder.id();
  sh->holder.store(id);
  caf::anon_send(holder, 1);
  CHECK(sh->reported.wait());
  caf::anon_send_exit(holder, caf::exit_reason::user_shutdown);
  rt.on_slow_handler([](const weave::slow_handler_event&) {});
  std::unique_lock<std::mutex> guard{sh->mtx};
  return sh->first;
}

} // namespace

TEST_CASE("with weave.dump-on-slow-handler a slow handler's report carries "
          "a dump") {
  weave::runtime_config cfg = config_with(2);
  cfg.set("weave.blocking-threshold", short_threshold);
  cfg.set("weave.dump-on-slow-handler", true);
  weave::runtime rt{std::move(cfg)};
  caf::actor_id id = 0;
  auto ev = hold_until_reported(rt, id);
  CHECK(ev.actor == id);
  REQUIRE(ev.dump);
  INFO(ev.dump->to_string());
  const thread_dump::thread* held = nullptr;
  for (auto& t : ev.dump->threads)
    if (t.role == thread_dump::role::scheduler && t.actor == id)
      held = &t;
  REQUIRE(held != nullptr);
  CHECK(held->state == thread_dump::state::running);
  CHECK(held->name == "weave-sched-" + std::to_string(ev.worker));
  REQUIRE(held->elapsed);
  CHECK(*held->elapsed >= short_threshold);
}

TEST_CASE("without weave.dump-on-slow-handler the report has no dump") {
  weave::runtime_config cfg = config_with(2);
  cfg.set("weave.blocking-threshold", short_threshold);
  weave::runtime rt{std::move(cfg)};
  caf::actor_id id = 0;
  auto ev = hold_until_reported(rt, id);
  CHECK(ev.actor == id);
  CHECK_FALSE(ev.dump);
}

TEST_CASE("weave.dump-on-slow-handler is parsed from the command line") {
  weave::runtime_config cfg;
  CHECK_FALSE(cfg.dump_on_slow_handler());
  std::string prog = "prog";
  std::string on = "--weave.dump-on-slow-handler"; // a flag
  char* argv[] = {prog.data(), on.data()};
  auto perr = cfg.parse(2, argv);
  INFO(weave::render(perr));
  CHECK(perr == caf::none);
  CHECK(cfg.dump_on_slow_handler());
  weave::runtime_config bad;
  std::string wrong = "--weave.dump-on-slow-handler=maybe";
  char* bad_argv[] = {prog.data(), wrong.data()};
  auto err = bad.parse(2, bad_argv);
  CHECK(weave::is(err, weave::errc::invalid_config));
  CHECK(weave::render(err).find("weave.dump-on-slow-handler")
        != std::string::npos);
}
