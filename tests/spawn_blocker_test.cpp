// spawn_blocker: a thread of its own, monitorable, awaitable; failures are
// errors, not crashes (promises 1 and 7).
#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;

TEST_CASE("a blocker runs on its own named thread and returns its result") {
  weave::runtime rt;
  auto b = weave::spawn_blocker(rt, [] { return weave::this_thread_name(); },
                                "cruncher");
  CHECK(b.actor());
  CHECK(b.get() == "cruncher");
}

TEST_CASE("a monitor sees a blocker end normally or with its error") {
  weave::runtime rt;
  caf::scoped_actor self{rt.system()};
  weave::test::latch go{1};
  auto ok = weave::spawn_blocker(rt, [&] { go.wait(); return 1; }, "ok");
  auto bad = weave::spawn_blocker(rt, [&]() -> int {
    go.wait();
    throw std::runtime_error("sensor unplugged");
  }, "bad");
  self->monitor(ok.actor());
  self->monitor(bad.actor());
  go.count_down();
  caf::error ok_reason = caf::make_error(caf::sec::runtime_error);
  caf::error bad_reason;
  for (int i = 0; i < 2; ++i)
    self->receive(
      [&](caf::down_msg& dm) {
        if (dm.source == ok.actor().address())
          ok_reason = dm.reason;
        else
          bad_reason = dm.reason;
      },
      caf::after(weave::test::patience) >> [] { FAIL("no down_msg"); });
  CHECK(ok_reason == caf::none);
  CHECK(weave::is(bad_reason, weave::errc::job_failed));
  CHECK(weave::render(bad_reason).find("sensor unplugged") != std::string::npos);
  auto res = bad.result().get_result();
  REQUIRE_FALSE(res);
  CHECK(weave::render(res.error()).find("sensor unplugged")
        != std::string::npos);
}

TEST_CASE("an actor starts a blocker and continues when it finishes") {
  weave::runtime rt;
  caf::scoped_actor test{rt.system()};
  caf::actor reply = test;
  rt.system().spawn([reply](caf::event_based_actor* self) {
    auto h = weave::spawn_blocker(self, [] { return 21; }, "helper");
    h.then([=](int v) {
      self->send(reply, v * 2);
      self->quit();
    });
  });
  int got = 0;
  test->receive([&](int v) { got = v; },
                caf::after(weave::test::patience) >> [] {});
  CHECK(got == 42);
}

TEST_CASE("spawn_blocker after shutdown fails at once") {
  weave::runtime rt;
  rt.shutdown();
  auto b = weave::spawn_blocker(rt, [] { return 1; });
  CHECK_FALSE(b.actor());
  CHECK(b.result().done());
  auto res = b.result().get_result();
  REQUIRE_FALSE(res);
  CHECK(weave::is(res.error(), weave::errc::shut_down));
}

TEST_CASE("a blocker still running at the deadline: its caller hears "
          "shut_down at once and its late result is counted") {
  constexpr auto deadline = 100ms;
  auto release = std::make_shared<weave::test::latch>(1);
  auto entered = std::make_shared<weave::test::latch>(1);
  auto finished = std::make_shared<weave::test::latch>(1);
  auto late_before = weave::thread_census::late_results_dropped();
  auto rt = std::make_unique<weave::runtime>();
  auto b = weave::spawn_blocker(
    *rt,
    [release, entered, finished] {
      entered->count_down();
      release->wait(std::chrono::hours{1});
      finished->count_down();
      return 7;
    },
    "stuck-blocker");
  REQUIRE(entered->wait());
  auto report = rt->shutdown(deadline);
  CHECK(report.jobs_abandoned == 1u);
  CHECK(report.threads_abandoned == 1u);
  // Told at the deadline, not when (if ever) the function returns.
  auto told = b.result().wait_for(weave::test::patience);
  release->count_down();
  REQUIRE(told);
  auto res = b.result().get_result();
  REQUIRE_FALSE(res);
  CHECK(weave::is(res.error(), weave::errc::shut_down));
  REQUIRE(finished->wait());
  while (weave::thread_census::late_results_dropped() == late_before)
    std::this_thread::yield(); // counted right after the function returns
  CHECK(weave::thread_census::late_results_dropped() == late_before + 1);
  rt.reset();
}
