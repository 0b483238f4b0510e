// How a loop ends: futures made by its context complete inside the loop even
// when it stops (with `shut_down`, never on a timer or pool thread, never
// touching a freed context); joining and destroying a loop never waits on
// itself; the runtime's shutdown report counts what the shutdown did.
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::failures;
using weave::test::latch;

namespace {

/// How long the runtime's shutdown waits for a loop stuck in a function.
constexpr auto short_deadline = std::chrono::milliseconds{200};

/// Rounds of the stop-while-continuing race.
constexpr int race_rounds = 20;

/// Continuations per round that offload while the loop stops.
constexpr int race_tasks = 50;

bool is_shut_down(const caf::error& err) {
  return weave::is(err, weave::errc::shut_down);
}

/// An actor that takes requests and never answers them.
caf::behavior silent(caf::event_based_actor* self) {
  return {[self](int) { return self->make_response_promise(); }};
}

} // namespace

TEST_CASE("context futures pending when the loop stops complete inside the "
          "loop with shut_down, and the ended context fails calls at once") {
  weave::runtime rt;
  failures bad;
  std::atomic<int> callbacks{0};
  latch release_job{1};
  auto mute = rt.system().spawn(silent);
  weave::future<int> late_offload;
  weave::future<void> late_sleep;
  weave::loop_context* context = nullptr;
  {
    weave::loop lp{rt, "ending"};
    auto check_ended = [&](const char* what, const weave::result<void>& r) {
      bad.check(weave::this_thread_name() == "ending",
                std::string{what} + ": continuation ran on "
                  + weave::this_thread_name());
      bad.check(!r && is_shut_down(r.error()),
                std::string{what} + ": did not end with shut_down");
      ++callbacks;
    };
    lp.submit([&](weave::loop_context& cx) {
        context = &cx;
        cx.sleep(1h).then([&](weave::result<void> r) {
          check_ended("sleep", r);
          // The loop is ending: the context refuses new work at once.
          late_offload = cx.offload([] { return 1; });
          late_sleep = cx.sleep(1ms);
        });
        cx.request<int>(mute, 1h, 1).then([&](weave::result<int> r) {
          check_ended("request", r ? weave::result<void>{}
                                   : weave::result<void>{r.error()});
        });
        cx.offload([&] { release_job.wait(); }).then(
          [&](weave::result<void> r) { check_ended("offload", r); });
      })
      .get();
    lp.stop();
    lp.join();
    // join() returns after the loop ended: every continuation already ran.
    CHECK(callbacks.load() == 3);
    CHECK(bad.messages() == "");
    REQUIRE(late_offload.done());
    CHECK(is_shut_down(late_offload.get_result().error()));
    REQUIRE(late_sleep.done());
    CHECK(is_shut_down(late_sleep.get_result().error()));
    // A context that outlives its loop is harmless: calls fail at once.
    auto after = context->sleep(1ms);
    REQUIRE(after.done());
    CHECK(is_shut_down(after.get_result().error()));
    // Only submitted futures are counted: context futures are the loop's own.
    CHECK(lp.stats().futures_failed == 0u);
  }
  release_job.count_down();
  caf::anon_send_exit(mute, caf::exit_reason::user_shutdown);
}

TEST_CASE("continuations that offload while the loop stops run once each, "
          "inside the loop") {
  for (int round = 0; round < race_rounds; ++round) {
    weave::runtime rt;
    failures bad;
    std::atomic<int> continued{0};
    std::atomic<int> offloads_ended{0};
    {
      weave::loop lp{rt, "racing"};
      for (int i = 0; i < race_tasks; ++i)
        lp.post([&](weave::loop_context& cx) {
          cx.sleep(1ms).then([&](weave::result<void>) {
            bad.check(weave::this_thread_name() == "racing",
                      "continuation on " + weave::this_thread_name());
            ++continued;
            cx.offload([] { return 1; }).then([&](weave::result<int>) {
              bad.check(weave::this_thread_name() == "racing",
                        "offload continuation on "
                          + weave::this_thread_name());
              ++offloads_ended;
            });
          });
        });
      lp.stop();
      lp.join();
      CHECK(continued.load() == race_tasks);
      CHECK(offloads_ended.load() == race_tasks);
    }
    CHECK(bad.messages() == "");
  }
}

TEST_CASE("a context sleep or request of hours::max() never times out and "
          "ends with shut_down when the loop stops") {
  weave::runtime rt;
  weave::loop lp{rt, "forever"};
  auto slept = lp.submit([](weave::loop_context& cx) {
    return cx.sleep(std::chrono::hours::max());
  });
  auto mute = rt.system().spawn(silent);
  auto asked = lp.submit([mute](weave::loop_context& cx) {
    return cx.request<int>(mute, caf::timespan::max(), 1);
  });
  auto asked_for_hours = lp.request<int>(mute, std::chrono::hours::max(), 2);
  CHECK(lp.submit([] { return 1; }).get() == 1);
  CHECK_FALSE(slept.done());
  CHECK_FALSE(asked.done());
  CHECK_FALSE(asked_for_hours.done());
  lp.stop();
  lp.join();
  for (auto* f : {&asked, &asked_for_hours}) {
    REQUIRE(f->done());
    CHECK(is_shut_down(f->get_result().error()));
  }
  REQUIRE(slept.done());
  CHECK(is_shut_down(slept.get_result().error()));
  caf::anon_send_exit(mute, caf::exit_reason::user_shutdown);
}

TEST_CASE("a loop stuck in a function at the shutdown deadline is counted as "
          "an abandoned thread, and its caller hears shut_down") {
  weave::runtime rt;
  weave::loop lp{rt, "stuck"};
  // Shared with the loop's thread: the shutdown abandons that thread, so
  // join() below does not wait for it, and it may still be waking from
  // release->wait() after this test case has returned.
  auto entered = std::make_shared<latch>(1);
  auto release = std::make_shared<latch>(1);
  auto f = lp.submit([entered, release] {
    entered->count_down();
    release->wait(); // stuck past the shutdown deadline, on purpose
    return 1;
  });
  REQUIRE(entered->wait());
  auto report = rt.shutdown(short_deadline);
  auto outcome = f.get_result();
  release->count_down();
  CHECK(report.threads_abandoned == 1u);
  CHECK(report.threads_joined == 0u);
  CHECK(report.futures_failed == 1u);
  REQUIRE_FALSE(outcome);
  CHECK(is_shut_down(outcome.error()));
  lp.join(); // returns at once: the shutdown abandoned the loop's thread
}

TEST_CASE("the shutdown report does not count futures an earlier stop "
          "failed") {
  weave::runtime rt;
  weave::loop lp{rt, "stopped-early"};
  auto pending = lp.submit([](weave::loop_context& cx) { return cx.sleep(1h); });
  CHECK(lp.submit([] { return 0; }).get() == 0);
  lp.stop();
  lp.join();
  CHECK(is_shut_down(pending.get_result().error()));
  auto report = rt.shutdown(weave::test::patience);
  CHECK(report.futures_failed == 0u);
  CHECK(lp.stats().futures_failed == 1u);
}

TEST_CASE("a shared loop destroyed from its own task stops without waiting "
          "on itself") {
  weave::runtime rt;
  auto lp = std::make_shared<weave::loop>(rt, "self-destroying-shared",
                                          weave::loop::shared);
  auto holder = std::make_shared<std::shared_ptr<weave::loop>>(lp);
  auto f = lp->submit([holder] {
    holder->reset(); // the last owner goes away inside the loop's own task
    return 1;
  });
  lp.reset();
  REQUIRE(f.wait_for(weave::test::patience));
  CHECK(f.get() == 1);
}

TEST_CASE("loop::join on a scheduler thread is refused with would_deadlock") {
  weave::runtime rt;
  weave::loop lp{rt, "joined"};
  weave::promise<std::string> outcome;
  auto verdict = outcome.get_future();
  auto joiner = rt.system().spawn([&lp, outcome]() mutable -> caf::behavior {
    return {[&lp, outcome](int) mutable {
      try {
        lp.join();
        outcome.set_value("joined");
      } catch (const weave::exception& e) {
        outcome.set_value(weave::to_string(e.code()));
      }
    }};
  });
  caf::anon_send(joiner, 1);
  REQUIRE(verdict.wait_for(weave::test::patience));
  CHECK(verdict.get() == "would_deadlock");
  CHECK_FALSE(lp.stopped());
  caf::anon_send_exit(joiner, caf::exit_reason::user_shutdown);
}

TEST_CASE("a loop's own task may not join it; the refusal is would_deadlock") {
  weave::runtime rt;
  weave::loop lp{rt, "self-joining-shared", weave::loop::shared};
  auto f = lp.submit([&lp] {
    try {
      lp.join();
      return std::string{"joined"};
    } catch (const weave::exception& e) {
      return std::string{weave::to_string(e.code())};
    }
  });
  REQUIRE(f.wait_for(weave::test::patience));
  CHECK(f.get() == "would_deadlock");
}

TEST_CASE("a loop that ended with an hour-long context sleep pending does not "
          "hold its thread: the runtime's shutdown joins it at once") {
  weave::runtime rt;
  {
    weave::loop lp{rt, "sleeper"};
    auto slept = lp.submit([](weave::loop_context& cx) {
      cx.sleep(1h); // pending when the loop ends
      return cx.sleep(1ms);
    });
    REQUIRE(slept.wait_for(weave::test::patience));
    slept.get(); // the submit completes when the short sleep fired
    lp.stop();
    lp.join();
  }
  auto report = rt.shutdown(weave::test::patience);
  CHECK(report.threads_abandoned == 0u);
  CHECK(report.threads_joined >= 1u); // the loop's own thread
  CHECK(report.total < weave::test::patience / 2);
}

TEST_CASE("a shared loop stuck in a function at the shutdown deadline: its "
          "caller hears shut_down, and the stuck scheduler thread is counted") {
  auto entered = std::make_shared<latch>(1);
  auto release = std::make_shared<latch>(1);
  auto rt = std::make_unique<weave::runtime>();
  auto lp = std::make_unique<weave::loop>(*rt, "stuck-shared",
                                          weave::loop::shared);
  auto f = lp->submit([entered, release] {
    entered->count_down();
    release->wait(); // blocks a scheduler thread past the deadline, on purpose
    return 1;
  });
  REQUIRE(entered->wait());
  auto report = rt->shutdown(short_deadline);
  auto outcome = f.get_result();
  release->count_down();
  CHECK(report.futures_failed == 1u);
  CHECK(report.threads_abandoned >= 1u);
  REQUIRE_FALSE(outcome);
  CHECK(is_shut_down(outcome.error()));
  lp.reset();
  rt.reset();
}
