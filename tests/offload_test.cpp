// offload from actors: promises 1 (every job ends once), 5 (no scheduler
// thread blocks) and 7 (bad input).
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <string>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::latch;

namespace {

/// Runs `body(self)` inside a fresh event-based actor and returns the string
/// it sends back to the test (via `reply`).
template <class Body>
std::string in_actor(weave::runtime& rt, Body body) {
  caf::scoped_actor test{rt.system()};
  caf::actor reply = test;
  rt.system().spawn([body, reply](caf::event_based_actor* self) mutable {
    body(self, reply);
  });
  std::string result = "<no answer>";
  test->receive([&](std::string& s) { result = std::move(s); },
                caf::after(weave::test::patience) >>
                  [&] { result = "<timeout in test>"; });
  return result;
}

} // namespace

TEST_CASE("offload runs on a pool thread and answers the actor's thread") {
  weave::runtime rt;
  auto out = in_actor(rt, [](caf::event_based_actor* self, caf::actor reply) {
    auto actor_thread = weave::this_thread_name();
    weave::offload(self, [] { return weave::this_thread_name(); })
      .then([=](std::string worker) {
        self->send(reply, actor_thread + "|" + worker + "|"
                            + weave::this_thread_name());
        self->quit();
      });
  });
  auto first = out.find('|');
  auto second = out.rfind('|');
  REQUIRE(first != std::string::npos);
  CHECK(out.substr(0, 12) == "weave-sched-");
  CHECK(out.substr(first + 1, second - first - 1) == "weave-pool_0");
  CHECK(out.substr(second + 1, 12) == "weave-sched-");
}

TEST_CASE("offload delivers void and move-only results") {
  weave::runtime rt;
  auto out = in_actor(rt, [](caf::event_based_actor* self, caf::actor reply) {
    weave::offload(self, [] {}).then([=] {
      weave::offload(self, [] { return std::make_unique<int>(41); })
        .then([=](std::unique_ptr<int> p) {
          self->send(reply, std::to_string(*p + 1));
          self->quit();
        });
    });
  });
  CHECK(out == "42");
}

TEST_CASE("a throwing job reaches the actor as job_failed; the worker lives") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 1, "fragile"};
  auto out = in_actor(rt, [&pool](caf::event_based_actor* self,
                                  caf::actor reply) {
    weave::offload(self, pool, []() -> int {
      throw std::runtime_error("disk on fire");
    }).then([=](int) { self->send(reply, std::string{"value?"}); },
            [=, &pool](caf::error& err) {
              auto first = weave::render(err);
              weave::offload(self, pool, [] { return 5; })
                .then([=](int v) {
                  self->send(reply, first + "|" + std::to_string(v));
                  self->quit();
                });
            });
  });
  CHECK(out == "weave::job_failed: disk on fire|5");
  pool.shutdown(weave::test::patience); // counters are final after this
  CHECK(pool.stats().failed == 1u);
  CHECK(pool.stats().completed == 1u);
  CHECK(pool.stats().workers == 1u);
}

TEST_CASE("a timed-out offload is answered once, never late, and never starts "
          "if still queued") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 1, "slow"};
  latch gate{1};
  std::atomic<int> queued_ran{0};
  std::atomic<int> answers{0};
  auto out = in_actor(rt, [&](caf::event_based_actor* self, caf::actor reply) {
    // Holds the only worker past its timeout.
    weave::offload(self, pool, [&] { gate.wait(); return 1; }, 30ms)
      .then([&, self, reply](int) { ++answers; },
            [&, self, reply](caf::error& err) {
              ++answers;
              self->send(reply, caf::to_string(err));
            });
    // Still queued when its deadline passes.
    weave::offload(self, pool, [&] { ++queued_ran; }, 10ms)
      .then([&] { ++answers; }, [&](caf::error&) { ++answers; });
  });
  CHECK(out.find("request_timeout") != std::string::npos);
  gate.count_down();
  // A round trip through the same pool and the same kind of actor: by its
  // end both timed-out jobs have been popped and any late answer sent.
  auto after = in_actor(rt, [&](caf::event_based_actor* self, caf::actor r) {
    weave::offload(self, pool, [] { return 0; }).then([=](int) {
      self->send(r, std::string{"drained"});
      self->quit();
    });
  });
  CHECK(after == "drained");
  CHECK(queued_ran.load() == 0);
  CHECK(answers.load() == 2); // one each: the timeouts, nothing late
}

TEST_CASE("a queued offload can be cancelled; it never runs") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 1, "busy"};
  latch gate{1};
  std::atomic<bool> ran{false};
  auto out = in_actor(rt, [&](caf::event_based_actor* self, caf::actor reply) {
    weave::offload(self, pool, [&] { gate.wait(); });
    auto h = weave::offload(self, pool, [&] { ran = true; });
    h.then([=] { self->send(reply, std::string{"ran"}); },
           [=](caf::error& err) { self->send(reply, weave::render(err)); });
    CHECK(h.cancel());
    CHECK_FALSE(h.cancel()); // cancelled twice: no second outcome
  });
  CHECK(out.find("weave::cancelled") == 0);
  gate.count_down();
  CHECK(pool.submit([] { return 1; }).get() == 1); // drained the queue
  CHECK_FALSE(ran.load());
}

TEST_CASE("offload from a scoped_actor waits with receive") {
  weave::runtime rt;
  caf::scoped_actor self{rt.system()};
  int value = 0;
  weave::offload(self, [] { return 6 * 7; })
    .receive([&](int v) { value = v; }, [&](caf::error&) { value = -1; });
  CHECK(value == 42);
  std::string err_text;
  weave::offload(self, [] { return 0; }, -1ms)
    .receive([&](int) { err_text = "accepted"; },
             [&](caf::error& e) { err_text = weave::render(e); });
  CHECK(err_text.find("negative timeout") != std::string::npos);
}

TEST_CASE("blocking jobs never hold the scheduler: an actor stays responsive") {
  weave::runtime_config cfg;
  cfg.set("scheduler.max-threads", 1); // one scheduler thread to hold
  weave::runtime rt{std::move(cfg)};
  constexpr int blocked_jobs = 8;
  weave::blocking_pool pool{rt, blocked_jobs, "holders"};
  latch gate{1};
  latch all_started{blocked_jobs};
  auto pinger = rt.system().spawn([]() -> caf::behavior {
    return {[](int x) { return x + 1; }};
  });
  auto blocker = rt.system().spawn([&](caf::event_based_actor* self) {
    for (int i = 0; i < blocked_jobs; ++i)
      weave::offload(self, pool, [&] {
        all_started.count_down();
        gate.wait();
      }).then([] {});
  });
  REQUIRE(all_started.wait());
  // Every job is blocked, yet the only scheduler thread still serves.
  caf::scoped_actor test{rt.system()};
  int answer = 0;
  test->request(pinger, weave::test::patience, 1)
    .receive([&](int x) { answer = x; }, [](caf::error&) {});
  CHECK(answer == 2);
  gate.count_down();
  caf::anon_send_exit(pinger, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(blocker, caf::exit_reason::user_shutdown);
}

TEST_CASE("offload after shutdown fails at once with shut_down") {
  weave::runtime rt;
  caf::scoped_actor self{rt.system()};
  weave::blocking_pool pool{rt, 1, "gone"};
  pool.shutdown(1s);
  std::string text;
  weave::offload(self, pool, [] { return 1; })
    .receive([&](int) { text = "ran"; },
             [&](caf::error& e) { text = weave::render(e); });
  CHECK(text.find("weave::shut_down") == 0);
}
