// runtime: shutdown finishes within its deadline and leaves no thread behind;
// the threads that must not block are known; calls after shutdown fail.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::latch;

TEST_CASE("destroying a runtime leaves no weave thread running") {
  auto before = weave::thread_census::running();
  {
    weave::runtime rt;
    weave::blocking_pool pool{rt, 3, "census"};
    for (int i = 0; i < 10; ++i)
      pool.submit([] { std::this_thread::sleep_for(1ms); });
    weave::spawn_blocker(rt, [] { return 0; }).get();
    weave::loop lp{rt, "census-loop"};
    CHECK(lp.submit([] { return 1; }).get() == 1);
    CHECK(weave::thread_census::running() > before);
  }
  CHECK(weave::thread_census::running() == before);
}

TEST_CASE("shutdown with queued work answers it and joins every worker") {
  auto before = weave::thread_census::running();
  std::vector<weave::future<int>> queued;
  weave::shutdown_report report;
  {
    weave::runtime rt;
    auto& pool = rt.default_pool();
    auto max = pool.max_workers();
    latch started{max}; // every worker holds a job
    latch release{1};
    std::vector<weave::future<int>> running;
    for (size_t i = 0; i < max; ++i)
      running.push_back(pool.submit([&] {
        started.count_down();
        release.wait();
        return 1;
      }));
    REQUIRE(started.wait());
    for (int i = 0; i < 20; ++i)
      queued.push_back(pool.submit([] { return 2; }));
    release.count_down();
    report = rt.shutdown(weave::test::patience);
    for (auto& f : running)
      CHECK(f.get() == 1); // running jobs were allowed to finish
  }
  // Some queued jobs may have run before shutdown closed the queue; every
  // one of them has exactly one outcome.
  size_t ran = 0, refused = 0;
  for (auto& f : queued) {
    auto res = f.get_result();
    if (res)
      ++ran;
    else if (weave::is(res.error(), weave::errc::shut_down))
      ++refused;
  }
  CHECK(ran + refused == queued.size());
  CHECK(report.jobs_cancelled == refused);
  CHECK(report.jobs_abandoned == 0u);
  CHECK(report.threads_abandoned == 0u);
  CHECK(weave::thread_census::running() == before);
}

TEST_CASE("a job that never returns is abandoned at the deadline, and counted") {
  constexpr auto deadline = 200ms;
  constexpr auto margin = 2s;
  latch stuck_started{1};
  auto release = std::make_shared<latch>(1);
  auto finished = std::make_shared<latch>(1);
  weave::shutdown_report report;
  weave::future<int> stuck;
  auto late_before = weave::thread_census::late_results_dropped();
  auto t0 = std::chrono::steady_clock::now();
  {
    weave::runtime rt;
    weave::blocking_pool pool{rt, 1, "stuck"};
    stuck = pool.submit([&stuck_started, release, finished] {
      stuck_started.count_down();
      release->wait(std::chrono::hours{1});
      finished->count_down();
      return 1;
    });
    REQUIRE(stuck_started.wait());
    t0 = std::chrono::steady_clock::now();
    report = rt.shutdown(deadline);
  }
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took < deadline + margin);
  CHECK(report.jobs_abandoned == 1u);
  CHECK(report.threads_abandoned == 1u);
  CHECK_FALSE(report.empty());
  CHECK(report.to_string().find("1 jobs abandoned") != std::string::npos);
  // Its caller was told at the deadline, not left waiting.
  REQUIRE(stuck.done());
  CHECK(weave::is(stuck.get_result().error(), weave::errc::shut_down));
  // When it does return, its result is dropped and counted.
  release->count_down();
  REQUIRE(finished->wait());
  while (weave::thread_census::late_results_dropped() == late_before)
    std::this_thread::yield(); // the worker counts right after returning
  CHECK(weave::thread_census::late_results_dropped() == late_before + 1);
}

TEST_CASE("scheduler threads are named and must not block") {
  weave::runtime rt;
  caf::scoped_actor test{rt.system()};
  auto probe = rt.system().spawn([]() -> caf::behavior {
    return {[](int) {
      std::string verdict = weave::this_thread_name();
      verdict += weave::this_thread_must_not_block() ? "|strict" : "|free";
      try {
        weave::make_ready_future(1).get();
        verdict += "|get allowed";
      } catch (const weave::exception& e) {
        verdict += e.code() == weave::errc::would_deadlock ? "|refused" : "|?";
      }
      return verdict;
    }};
  });
  std::string verdict;
  test->request(probe, weave::test::patience, 1)
    .receive([&](std::string& v) { verdict = v; }, [](caf::error&) {});
  CHECK(verdict.rfind("weave-sched-", 0) == 0);
  CHECK(verdict.find("|strict|refused") != std::string::npos);
  CHECK_FALSE(weave::this_thread_must_not_block());
  CHECK(weave::this_thread_name() == "main");
  caf::anon_send_exit(probe, caf::exit_reason::user_shutdown);
}

TEST_CASE("runtime::from finds the runtime; a foreign system is refused") {
  weave::runtime rt;
  CHECK(&weave::runtime::from(rt.system()) == &rt);
  caf::actor_system_config cfg;
  caf::actor_system plain{cfg};
  CHECK_THROWS_AS(weave::runtime::from(plain), weave::exception);
}

TEST_CASE("shutdown is idempotent and later calls fail at once") {
  weave::runtime rt;
  auto first = rt.shutdown();
  CHECK(first.empty());
  auto second = rt.shutdown();
  CHECK(second.phases.empty());
  CHECK(rt.shutting_down());
  CHECK_THROWS_AS(rt.default_pool(), weave::exception);
  CHECK_THROWS_AS(weave::loop(rt, "late"), weave::exception);
}

namespace {

/// True if `make()` throws `weave::exception` with `shut_down`.
template <class F>
bool refused_with_shut_down(F make) {
  try {
    make();
  } catch (const weave::exception& e) {
    return e.code() == weave::errc::shut_down;
  }
  return false;
}

} // namespace

TEST_CASE("after shutdown, creating a pool, a loop or a channel fails with "
          "shut_down") {
  weave::runtime rt;
  rt.shutdown();
  CHECK(refused_with_shut_down([&] { weave::blocking_pool p{rt, 2, "late"}; }));
  CHECK(refused_with_shut_down([&] { weave::loop l{rt, "late"}; }));
  CHECK(refused_with_shut_down([&] { weave::channel<int> c{rt, 4}; }));
  CHECK(refused_with_shut_down([&] { rt.system(); }));
  CHECK(refused_with_shut_down([&] { rt.default_pool(); }));
}

TEST_CASE("pools, loops and channels created while the runtime shuts down "
          "are refused or stopped, never missed") {
  constexpr int rounds = 40;
  /// Each racer keeps at most this many of its components alive.
  constexpr size_t kept = 4;
  weave::test::failures bad;
  size_t created = 0;
  for (int round = 0; round < rounds; ++round) {
    weave::runtime_config cfg;
    cfg.set("weave.pool-size", 2);
    cfg.set("scheduler.max-threads", 2);
    weave::runtime rt{std::move(cfg)};
    latch started{3};
    latch shut{1};
    std::atomic<size_t> made{0};
    auto race = [&](auto make, auto check) {
      using ptr = decltype(make());
      std::vector<ptr> alive;
      started.count_down();
      for (;;) {
        try {
          alive.push_back(make());
          ++made;
        } catch (const weave::exception& e) {
          bad.check(e.code() == weave::errc::shut_down,
                    "refused with " + weave::render(e.error()));
          break;
        }
        if (alive.size() > kept)
          alive.erase(alive.begin());
      }
      shut.wait();
      for (auto& x : alive)
        check(*x);
    };
    std::thread pools{[&] {
      race([&] { return std::make_unique<weave::blocking_pool>(rt, 1, "r"); },
           [&](weave::blocking_pool& p) {
             auto f = p.submit([] { return 1; });
             bad.check(f.done(), "a pool missed by shutdown accepted a job");
             if (f.wait_for(weave::test::patience)) {
               auto res = f.get_result();
               bad.check(!res && weave::is(res.error(), weave::errc::shut_down),
                         "a pool missed by shutdown ran a job");
             }
           });
    }};
    std::thread loops{[&] {
      race([&] { return std::make_unique<weave::loop>(rt, "r"); },
           [&](weave::loop& l) {
             bad.check(l.stopped(), "a loop missed by shutdown");
           });
    }};
    std::thread channels{[&] {
      race([&] { return std::make_unique<weave::channel<int>>(rt, 2); },
           [&](weave::channel<int>& c) {
             bad.check(c.closed(), "a channel missed by shutdown");
           });
    }};
    REQUIRE(started.wait());
    rt.shutdown(weave::test::patience);
    shut.count_down();
    pools.join();
    loops.join();
    channels.join();
    created += made.load();
  }
  CHECK(bad.messages() == "");
  CHECK(created > 0u);
}

TEST_CASE("an actor the shutdown abandoned that asks for its runtime after "
          "the runtime is destroyed hears shut_down") {
  auto entered = std::make_shared<latch>(1);
  auto release = std::make_shared<latch>(1);
  weave::promise<std::string> verdict;
  auto answer = verdict.get_future();
  {
    weave::runtime rt;
    // A thread of its own: the shutdown leaves its actor system behind
    // (alive) instead of waiting for it.
    auto stuck = rt.system().spawn<caf::detached>(
      [entered, release, verdict](caf::event_based_actor* self) mutable
      -> caf::behavior {
        return {[self, entered, release, verdict](int) mutable {
          entered->count_down();
          release->wait();
          try {
            weave::runtime::from(self->system());
            verdict.set_value("returned a runtime");
          } catch (const weave::exception& e) {
            verdict.set_value(weave::is(e.error(), weave::errc::shut_down)
                                ? "shut_down"
                                : std::string{"other: "} + e.what());
          }
          self->quit();
        }};
      });
    caf::anon_send(stuck, 1);
    REQUIRE(entered->wait());
    auto report = rt.shutdown(100ms);
    CHECK(report.threads_abandoned >= 1u);
  }
  release->count_down();
  REQUIRE(answer.wait_for(weave::test::patience));
  CHECK(answer.get() == "shut_down");
}
