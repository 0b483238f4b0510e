// runtime shutdown keeps its deadline whatever the user's code does, and its
// report counts every job and thread left behind (promises 6 and 8).
//
// Each case leaves something stuck (a pool job, a loop function, a user's
// detached or blocking actor, a blocker, a continuation), shuts down with a
// short deadline on a thread of its own, and checks that shutdown returned
// within the deadline plus the runtime's documented margin. The stuck code is
// released at the end, so that a hang (the bug) fails the bounded wait
// instead of stalling the suite.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>
#include <tuple>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::latch;

namespace {

using clock_type = std::chrono::steady_clock;

/// The deadline every case shuts down with.
constexpr auto short_deadline = std::chrono::milliseconds{100};

/// What the runtime promises: shutdown(d) returns within d + this.
constexpr auto margin = weave::runtime::shutdown_margin;

/// How long a case waits for a shutdown that should keep its deadline
/// before calling it hung (generous: this is a hang detector, the timing
/// checks use `margin`).
constexpr auto hang_limit = std::chrono::seconds{20};

/// Stuck user code waits on this; released when the case ends.
struct stuck_gate {
  std::shared_ptr<latch> release = std::make_shared<latch>(1);
  std::shared_ptr<latch> entered = std::make_shared<latch>(1);

  /// A function that signals it is running, then blocks until released.
  auto blocker() const {
    return [release = release, entered = entered] {
      entered->count_down();
      release->wait(std::chrono::hours{1});
      return 1;
    };
  }
};

/// Runs `body` on a thread of its own; false if it did not return within
/// `hang_limit`. `gate` is released either way, so the thread can end.
template <class F>
bool finishes(F body, const stuck_gate& gate) {
  auto done = std::make_shared<latch>(1);
  std::thread th{[body = std::move(body), done]() mutable {
    body();
    done->count_down();
  }};
  auto ok = done->wait(hang_limit);
  gate.release->count_down();
  if (ok || done->wait(hang_limit))
    th.join();
  else
    th.detach(); // a deadlock: the watchdog ends the suite
  return ok;
}

/// Shuts `rt` down with `short_deadline` on a thread of its own (bounded as
/// `finishes` is): whether it returned, its report, and how long it took.
std::tuple<bool, weave::shutdown_report, clock_type::duration>
timed_shutdown(weave::runtime& rt, const stuck_gate& gate) {
  weave::shutdown_report report;
  clock_type::duration took{};
  auto done = finishes(
    [&] {
      auto t0 = clock_type::now();
      report = rt.shutdown(short_deadline);
      took = clock_type::now() - t0;
    },
    gate);
  return {done, report, took};
}

weave::runtime_config quick_config() {
  weave::runtime_config cfg;
  cfg.set("weave.shutdown-deadline", caf::timespan{short_deadline});
  return cfg;
}

void print(const char* what, clock_type::duration took) {
  std::printf("shutdown bound: %s: %.1f ms (deadline %lld ms)\n", what,
              std::chrono::duration<double, std::milli>(took).count(),
              static_cast<long long>(short_deadline.count()));
}

} // namespace

TEST_CASE("a pool shut down before the runtime leaves a stuck job: the "
          "runtime's shutdown keeps its deadline and counts the job") {
  stuck_gate gate;
  auto rt = std::make_unique<weave::runtime>(quick_config());
  auto pool = std::make_unique<weave::blocking_pool>(*rt, 2, "early");
  auto stuck = pool->submit(gate.blocker());
  REQUIRE(gate.entered->wait());
  auto early = pool->shutdown(10ms);
  CHECK(early.jobs_abandoned == 1u);
  CHECK(early.threads_abandoned == 1u);
  REQUIRE(stuck.done());
  CHECK(weave::is(stuck.get_result().error(), weave::errc::shut_down));
  pool.reset(); // already shut down: returns at once
  auto [finished, report, took] = timed_shutdown(*rt, gate);
  REQUIRE(finished);
  print("pool shut down early, its job stuck", took);
  CHECK(took < short_deadline + margin);
  CHECK(report.jobs_abandoned == 1u);
  CHECK(report.threads_abandoned == 1u);
  rt.reset();
}

TEST_CASE("runtime, pool and a stuck job in declaration order: leaving the "
          "scope keeps both deadlines") {
  stuck_gate gate;
  clock_type::duration took{};
  bool entered = false;
  REQUIRE(finishes(
    [&] {
      auto t0 = clock_type::now();
      {
        weave::runtime rt{quick_config()};
        weave::blocking_pool pool{rt, 2};
        pool.submit(gate.blocker());
        entered = gate.entered->wait();
        t0 = clock_type::now();
      } // the pool's destructor waits one deadline, the runtime's another
      took = clock_type::now() - t0;
    },
    gate));
  REQUIRE(entered);
  print("end of scope (pool, then runtime), a pool job stuck", took);
  CHECK(took < 2 * (short_deadline + margin));
}

TEST_CASE("a loop stuck in a submitted function: shutdown keeps its "
          "deadline and counts the loop's thread") {
  stuck_gate gate;
  auto rt = std::make_unique<weave::runtime>(quick_config());
  auto lp = std::make_unique<weave::loop>(*rt, "stuck-loop");
  auto stuck = lp->submit(gate.blocker());
  REQUIRE(gate.entered->wait());
  auto [finished, report, took] = timed_shutdown(*rt, gate);
  REQUIRE(finished);
  print("loop on its own thread stuck in a submitted function", took);
  CHECK(took < short_deadline + margin);
  CHECK(report.threads_abandoned == 1u);
  lp.reset();
  rt.reset();
}

TEST_CASE("a user's detached and blocking actors still running: shutdown "
          "keeps its deadline and counts their threads once") {
  stuck_gate gate;
  auto rt = std::make_unique<weave::runtime>(quick_config());
  auto both = std::make_shared<latch>(2);
  auto release = gate.release;
  auto detached = rt->system().spawn<caf::detached>(
    [both, release](caf::event_based_actor*) -> caf::behavior {
      return {[both, release](int) {
        both->count_down();
        release->wait(std::chrono::hours{1});
      }};
    });
  caf::anon_send(detached, 1);
  rt->system().spawn([both, release](caf::blocking_actor*) {
    both->count_down();
    release->wait(std::chrono::hours{1});
  });
  REQUIRE(both->wait());
  auto [finished, report, took] = timed_shutdown(*rt, gate);
  REQUIRE(finished);
  print("a user's detached and blocking actors still running", took);
  CHECK(took < short_deadline + margin);
  CHECK(report.actors_abandoned == 2u);
  CHECK(report.threads_abandoned == 2u);
  CHECK(report.jobs_abandoned == 0u);
  detached = nullptr;
  rt.reset();
}

TEST_CASE("an event-based actor stuck in a handler on a scheduler thread: "
          "shutdown keeps its deadline") {
  stuck_gate gate;
  weave::runtime_config cfg = quick_config();
  cfg.set("weave.blocking-threshold", caf::timespan{1h}); // no report noise
  auto rt = std::make_unique<weave::runtime>(std::move(cfg));
  auto entered = gate.entered;
  auto release = gate.release;
  auto stuck = rt->system().spawn([entered, release]() -> caf::behavior {
    return {[entered, release](int) {
      entered->count_down();
      release->wait(std::chrono::hours{1}); // blocks a scheduler thread
    }};
  });
  caf::anon_send(stuck, 1);
  REQUIRE(gate.entered->wait());
  auto [finished, report, took] = timed_shutdown(*rt, gate);
  REQUIRE(finished);
  print("an event-based actor stuck in a handler", took);
  CHECK(took < short_deadline + margin);
  CHECK(report.actors_abandoned == 1u);
  CHECK(report.threads_abandoned >= 1u);
  stuck = nullptr;
  rt.reset();
}

TEST_CASE("a continuation that never returns does not hold shutdown past "
          "its deadline") {
  stuck_gate gate;
  auto rt = std::make_unique<weave::runtime>(quick_config());
  auto pool = std::make_unique<weave::blocking_pool>(*rt, 1, "cont");
  auto busy = pool->submit(gate.blocker());
  REQUIRE(gate.entered->wait());
  // Queued behind the stuck job: shutdown answers it with shut_down, which
  // runs its continuation, which blocks.
  auto release = gate.release;
  auto queued = pool->submit([] { return 2; }).then([release](weave::result<int>) {
    release->wait(std::chrono::hours{1});
    return 0;
  });
  auto [finished, report, took] = timed_shutdown(*rt, gate);
  REQUIRE(finished);
  print("a continuation blocks during shutdown", took);
  CHECK(took < short_deadline + margin);
  CHECK_FALSE(report.empty());
  CHECK(report.threads_abandoned >= 1u);
  pool.reset();
  rt.reset();
}

TEST_CASE("a continuation run by shutdown may call shutdown again") {
  stuck_gate gate;
  auto rt = std::make_unique<weave::runtime>(quick_config());
  auto pool = std::make_unique<weave::blocking_pool>(*rt, 1, "again");
  auto busy = pool->submit(gate.blocker());
  REQUIRE(gate.entered->wait());
  auto& runtime = *rt;
  auto inner_empty = std::make_shared<std::atomic<int>>(-1);
  auto queued = pool->submit([] { return 2; }).then(
    [&runtime, inner_empty](weave::result<int>) {
      *inner_empty = runtime.shutdown().phases.empty() ? 1 : 0;
      return 0;
    });
  weave::shutdown_report report;
  REQUIRE(finishes([&] { report = rt->shutdown(short_deadline); }, gate));
  CHECK(queued.get() == 0);
  CHECK(inner_empty->load() == 1); // the nested call returned an empty report
  CHECK(report.jobs_cancelled == 1u);
  pool.reset();
  rt.reset();
}

TEST_CASE("the continuation of an abandoned job may destroy its pool") {
  stuck_gate gate;
  auto rt = std::make_unique<weave::runtime>(quick_config());
  auto pool = std::make_unique<weave::blocking_pool>(*rt, 1, "self-destroy");
  auto stuck = pool->submit(gate.blocker());
  REQUIRE(gate.entered->wait());
  // Runs when shutdown abandons the job, on the thread that abandons it.
  auto cont = stuck.then([&pool](weave::result<int> r) {
    pool.reset();
    return r ? 1 : 0;
  });
  weave::shutdown_report report;
  REQUIRE(finishes([&] { report = rt->shutdown(short_deadline); }, gate));
  REQUIRE(cont.wait_for(weave::test::patience));
  CHECK(cont.get() == 0);
  CHECK(pool == nullptr);
  CHECK(report.jobs_abandoned == 1u);
  rt.reset();
}
