// offload from actors: every job ends exactly once (value, error, timeout,
// cancellation), no scheduler thread blocks on a job, every timeout is
// weave's timeout, and bad input (a negative timeout, a call after shutdown)
// gets a clear error.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
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

TEST_CASE("a timed-out offload is answered once with weave's timeout, never "
          "late, and never starts if still queued") {
  // Long enough for the held job to start before it under any load.
  constexpr auto held_timeout = 100ms;
  // Shorter: the queued job's deadline passes while it waits.
  constexpr auto queued_timeout = 10ms;
  weave::runtime rt;
  weave::blocking_pool pool{rt, 1, "slow"};
  // The worker exists and is idle before the held job is queued.
  REQUIRE(pool.submit([] { return 0; }).get() == 0);
  latch gate{1};
  std::atomic<bool> held_started{false};
  std::atomic<int> queued_ran{0};
  weave::test::failures bad;
  auto out = in_actor(rt, [&](caf::event_based_actor* self, caf::actor reply) {
    // Touched only by this actor's handlers.
    struct state {
      int answers = 0;
      int timeouts = 0;
      std::string errors;
    };
    auto st = std::make_shared<state>();
    // Once both have timed out: release the job holding the only worker and
    // queue one more behind the two. The same worker sends every late answer
    // of theirs before this job's answer, and one sender's messages arrive
    // in order: when this answer is handled, any late one has been too.
    auto on_timeout = [=, &pool, &gate, &bad](caf::error& err) {
      ++st->answers;
      bad.check(weave::is(err, weave::errc::timeout),
                "timeout arrived as " + weave::render(err));
      st->errors += weave::render(err) + ";";
      if (++st->timeouts < 2)
        return;
      weave::offload(self, pool, [] { return 0; }).then([=](int) {
        self->send(reply, st->errors + " answers="
                            + std::to_string(st->answers));
        self->quit();
      });
      gate.count_down();
    };
    // Holds the only worker past its timeout, then returns a late value.
    weave::offload(
      self, pool,
      [&] {
        held_started = true;
        gate.wait();
        return 1;
      },
      held_timeout)
      .then(
        [=, &bad](int) {
          ++st->answers;
          bad.add("the held job's late value was delivered");
        },
        on_timeout);
    // Still queued when its deadline passes.
    weave::offload(self, pool, [&] { ++queued_ran; }, queued_timeout)
      .then(
        [=, &bad] {
          ++st->answers;
          bad.add("the queued job's value was delivered");
        },
        on_timeout);
  });
  CHECK(bad.messages() == "");
  CHECK(held_started.load()); // so its late value was sent, and dropped
  CHECK(out.find("answers=2") != std::string::npos); // one each, none late
  CHECK(out.find("request_timeout") == std::string::npos);
  CHECK(out.find("weave::timeout") == 0);
  CHECK(queued_ran.load() == 0);
}

TEST_CASE("an offload timeout reaches a blocking receiver and an actor's own "
          "error handler as weave's timeout") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 1, "held"};
  latch gate{1};
  latch holding{1};
  // Holds the only worker (no timeout), so the offloads below stay queued.
  auto held = pool.submit([&] {
    holding.count_down();
    gate.wait();
  });
  REQUIRE(holding.wait());
  caf::scoped_actor self{rt.system()};
  caf::error got;
  weave::offload(self, pool, [] {}, 10ms)
    .receive([] {}, [&](caf::error& err) { got = std::move(err); });
  CHECK(weave::is(got, weave::errc::timeout));
  CHECK(weave::render(got) == "weave::timeout: offload: no result within its "
                              "timeout");
  // `then` without an error handler: the actor's error handler gets it.
  caf::actor reply = self;
  rt.system().spawn([&pool, reply](caf::event_based_actor* a) {
    a->set_error_handler([=](caf::scheduled_actor*, caf::error& err) {
      a->send(reply, weave::render(err));
      a->quit();
    });
    weave::offload(a, pool, [] { return 1; }, 10ms).then([](int) {});
  });
  std::string text = "<no answer>";
  self->receive([&](std::string& s) { text = std::move(s); },
                caf::after(weave::test::patience) >> [] {});
  CHECK(text.find("weave::timeout") == 0);
  gate.count_down();
  held.get();
}

TEST_CASE("a queued offload can be cancelled; it never runs") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 1, "busy"};
  latch gate{1};
  std::atomic<bool> ran{false};
  weave::test::failures bad;
  auto out = in_actor(rt, [&](caf::event_based_actor* self, caf::actor reply) {
    weave::offload(self, pool, [&] { gate.wait(); });
    auto h = weave::offload(self, pool, [&] { ran = true; });
    h.then([=] { self->send(reply, std::string{"ran"}); },
           [=](caf::error& err) { self->send(reply, weave::render(err)); });
    bad.check(h.cancel(), "the first cancel failed");
    // Cancelled twice: no second outcome.
    bad.check(!h.cancel(), "the second cancel succeeded");
  });
  CHECK(bad.messages() == "");
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

TEST_CASE("offload's handlers take the value as T, T& or const T&, and the "
          "error as error, error& or const error&") {
  weave::runtime rt;
  caf::scoped_actor self{rt.system()};
  std::string seen;
  weave::offload(self, [] { return std::string{"a"}; })
    .receive([&](std::string& v) { seen += v; }, [](caf::error&) {});
  weave::offload(self, [] { return std::string{"b"}; })
    .receive([&](const std::string& v) { seen += v; },
             [](const caf::error&) {});
  weave::offload(self, [] { return std::string{"c"}; })
    .receive([&](std::string v) { seen += v; }, [](caf::error) {});
  weave::offload(self, [] { return std::make_unique<int>(4); })
    .receive([&](std::unique_ptr<int>& p) { seen += std::to_string(*p); },
             [](caf::error&) {});
  weave::offload(self, []() -> int { throw std::runtime_error("x"); })
    .receive([&](int&) { seen += "?"; },
             [&](const caf::error& e) { seen += weave::to_string(
                                          weave::errc{e.code()}); });
  CHECK(seen == "abc4job_failed");
  // The same from an event-based actor, with then and await.
  auto out = in_actor(rt, [](caf::event_based_actor* a, caf::actor reply) {
    auto acc = std::make_shared<std::string>();
    weave::offload(a, [] { return std::string{"x"}; })
      .await([=](std::string& v) { *acc += v; }, [](const caf::error&) {});
    weave::offload(a, [] { return std::make_unique<int>(7); })
      .then([=](const std::unique_ptr<int>& p) {
              *acc += std::to_string(*p);
              a->send(reply, *acc);
              a->quit();
            },
            [](caf::error) {});
  });
  CHECK(out == "x7");
}

TEST_CASE("an offload with a timeout too large for the clock runs and answers: "
          "the timeout saturates to never") {
  weave::runtime rt;
  caf::scoped_actor self{rt.system()};
  std::string seen;
  auto record = [&](const caf::error& e) { seen += weave::render(e) + ";"; };
  weave::offload(self, [] { return 1; }, std::chrono::hours::max())
    .receive([&](int v) { seen += std::to_string(v); }, record);
  weave::offload(self, [] { return 2; }, std::chrono::seconds::max())
    .receive([&](int v) { seen += std::to_string(v); }, record);
  weave::offload(self, [] { return 3; },
                 std::chrono::duration<double>{1e300})
    .receive([&](int v) { seen += std::to_string(v); }, record);
  weave::offload(self, [] { return 4; }, caf::timespan::max())
    .receive([&](int v) { seen += std::to_string(v); }, record);
  CHECK(seen == "1234");
}

TEST_CASE("an offload with a negative or not-a-number timeout is refused at "
          "once with invalid_argument") {
  weave::runtime rt;
  caf::scoped_actor self{rt.system()};
  std::atomic<int> ran{0};
  std::string seen;
  auto record = [&](const caf::error& e) {
    seen += weave::is(e, weave::errc::invalid_argument) ? "refused;"
                                                        : weave::render(e);
  };
  weave::offload(self, [&] { return ++ran; }, std::chrono::hours::min())
    .receive([&](int) { seen += "ran;"; }, record);
  weave::offload(self, [&] { return ++ran; }, -1ns)
    .receive([&](int) { seen += "ran;"; }, record);
  weave::offload(self, [&] { return ++ran; },
                 std::chrono::duration<double>{std::nan("")})
    .receive([&](int) { seen += "ran;"; }, record);
  CHECK(seen == "refused;refused;refused;");
  CHECK(ran.load() == 0);
}
