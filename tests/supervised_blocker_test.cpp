// spawn_supervised_blocker: restarts within the policy, then gives up; both
// visible to an observer (issue: supervision of blockers).
#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;

TEST_CASE("a failing blocker is restarted and its later success is the result") {
  weave::runtime rt;
  caf::scoped_actor observer{rt.system()};
  auto runs = std::make_shared<std::atomic<int>>(0);
  weave::restart_policy policy{3, 5s};
  auto s = weave::spawn_supervised_blocker(
    rt,
    [runs] {
      if (++*runs < 3)
        throw std::runtime_error("flaky device");
      return weave::this_thread_name();
    },
    policy, "poller", observer);
  CHECK(s.result().get() == "poller");
  CHECK(runs->load() == 3);
  std::vector<uint64_t> restarts;
  for (int i = 0; i < 2; ++i)
    observer->receive(
      [&](weave::blocker_restarted& r) {
        CHECK(r.name == "poller");
        CHECK(r.reason.find("flaky device") != std::string::npos);
        restarts.push_back(r.restart);
      },
      caf::after(weave::test::patience) >> [] { FAIL("no restart event"); });
  CHECK(restarts == std::vector<uint64_t>{1, 2});
}

TEST_CASE("too many restarts within the window: the supervisor gives up") {
  weave::runtime rt;
  caf::scoped_actor observer{rt.system()};
  auto runs = std::make_shared<std::atomic<int>>(0);
  auto s = weave::spawn_supervised_blocker(
    rt,
    [runs]() -> int {
      ++*runs;
      throw std::runtime_error("always broken");
    },
    weave::restart_policy{}, "broken", observer); // OTP: 1 restart in 5 s
  observer->monitor(s.supervisor());
  auto res = s.result().get_result();
  REQUIRE_FALSE(res);
  CHECK(weave::is(res.error(), weave::errc::gave_up));
  CHECK(weave::render(res.error()).find("always broken") != std::string::npos);
  CHECK(runs->load() == 2); // the first run and one restart
  bool restarted = false, gave_up = false, down = false;
  for (int i = 0; i < 3; ++i)
    observer->receive(
      [&](weave::blocker_restarted&) { restarted = true; },
      [&](weave::blocker_gave_up& g) {
        gave_up = true;
        CHECK(g.restarts == 1u);
      },
      [&](caf::down_msg& dm) {
        down = true;
        CHECK(weave::is(dm.reason, weave::errc::gave_up));
      },
      caf::after(weave::test::patience) >> [] { FAIL("missing event"); });
  CHECK(restarted);
  CHECK(gave_up);
  CHECK(down);
}
