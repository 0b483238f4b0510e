// The blocking detector (tutorial §8): a handler that holds a scheduler
// thread past the threshold is reported once, by actor; quick handlers are
// not.
#include <doctest/doctest.h>

#include <mutex>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto threshold = 50ms;
constexpr auto held_for = 300ms; // well past the threshold

} // namespace

TEST_CASE("a handler that blocks a scheduler thread is reported, once") {
  weave::runtime_config cfg;
  cfg.set("weave.blocking-threshold", caf::timespan{threshold});
  weave::runtime rt{std::move(cfg)};
  std::mutex mtx;
  std::vector<weave::slow_handler_event> events;
  weave::test::latch reported{1};
  rt.on_slow_handler([&](const weave::slow_handler_event& ev) {
    std::lock_guard<std::mutex> guard{mtx};
    events.push_back(ev);
    reported.count_down();
  });
  caf::scoped_actor test{rt.system()};
  auto quick = rt.system().spawn([]() -> caf::behavior {
    return {[](int x) { return x; }};
  });
  for (int i = 0; i < 100; ++i)
    test->request(quick, weave::test::patience, i)
      .receive([](int) {}, [](caf::error&) {});
  auto sleepy = rt.system().spawn([]() -> caf::behavior {
    return {[](int x) {
      std::this_thread::sleep_for(held_for); // the mistake being detected
      return x;
    }};
  });
  test->request(sleepy, weave::test::patience, 1)
    .receive([](int) {}, [](caf::error&) {});
  REQUIRE(reported.wait());
  std::lock_guard<std::mutex> guard{mtx};
  REQUIRE(events.size() == 1u);
  CHECK(events[0].actor == sleepy.id());
  CHECK(events[0].held >= threshold);
  CHECK(rt.slow_handlers() == 1u);
  caf::anon_send_exit(quick, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(sleepy, caf::exit_reason::user_shutdown);
}
