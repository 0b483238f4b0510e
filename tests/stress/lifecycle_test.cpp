// 1,000 rounds of create a runtime / submit from several threads / shut down
// while they submit: no hang, no crash, every future ends, and the thread
// census is back where it started. Then 1,000 rounds of creating pools,
// loops, channels and timed jobs while the runtime shuts down: each one is
// refused or stopped, none is missed.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int rounds = 1000;
constexpr int submit_threads = 3;
constexpr int submits_each = 50;

} // namespace

// The suite's watchdog (tests/test_main.cpp) allows a case its declared
// timeout; doctest fails a case that ends later than that.
TEST_CASE("create / submit / shut down, racing, 1000 times"
          * doctest::timeout(600)) {
  auto before = weave::thread_census::running();
  long ok = 0, refused = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int round = 0; round < rounds; ++round) {
    weave::runtime_config cfg;
    cfg.set("weave.pool-size", 2);
    cfg.set("scheduler.max-threads", 2);
    weave::runtime rt{std::move(cfg)};
    weave::loop lp{rt, "round-loop"};
    auto& pool = rt.default_pool();
    std::atomic<long> round_ok{0}, round_refused{0};
    std::vector<std::thread> threads;
    weave::test::latch started{submit_threads};
    for (int t = 0; t < submit_threads; ++t)
      threads.emplace_back([&, t] {
        started.count_down();
        std::vector<weave::future<int>> fs;
        for (int i = 0; i < submits_each; ++i)
          fs.push_back(t == 0 ? lp.submit([i] { return i; })
                              : pool.submit([i] { return i; }));
        for (auto& f : fs) {
          auto r = f.get_result();
          if (r)
            ++round_ok;
          else if (weave::is(r.error(), weave::errc::shut_down))
            ++round_refused;
        }
      });
    started.wait();
    rt.shutdown(5s); // races the submitters
    for (auto& th : threads)
      th.join();
    REQUIRE(round_ok + round_refused == submit_threads * submits_each);
    ok += round_ok;
    refused += round_refused;
  }
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                            - t0)
                .count();
  std::printf("lifecycle: %d rounds in %.2fs; %ld futures ok, %ld refused with "
              "shut_down; threads started %zu, running now %zu\n",
              rounds, secs, ok, refused, weave::thread_census::started(),
              weave::thread_census::running());
  CHECK(weave::thread_census::running() == before);
}

TEST_CASE("pools, loops, channels and timed jobs created while shutting "
          "down: refused or stopped, never missed, 1000 times"
          * doctest::timeout(600)) {
  /// Each racer keeps at most this many of its components alive.
  constexpr size_t kept = 2;
  auto before = weave::thread_census::running();
  weave::test::failures bad;
  long made = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int round = 0; round < rounds; ++round) {
    weave::runtime_config cfg;
    cfg.set("weave.pool-size", 2);
    cfg.set("scheduler.max-threads", 2);
    weave::runtime rt{std::move(cfg)};
    weave::test::latch started{2};
    weave::test::latch shut{1};
    std::atomic<long> round_made{0};
    std::thread creator{[&] {
      started.count_down();
      std::vector<std::unique_ptr<weave::blocking_pool>> pools;
      std::vector<std::unique_ptr<weave::loop>> loops;
      std::vector<std::unique_ptr<weave::channel<int>>> channels;
      std::vector<weave::future<int>> timed;
      try {
        for (;;) {
          pools.push_back(std::make_unique<weave::blocking_pool>(rt, 1, "r"));
          timed.push_back(pools.back()->submit([] { return 1; }, 1h));
          loops.push_back(std::make_unique<weave::loop>(rt, "r"));
          channels.push_back(std::make_unique<weave::channel<int>>(rt, 2));
          round_made += 3;
          if (pools.size() > kept) {
            pools.erase(pools.begin());
            loops.erase(loops.begin());
            channels.erase(channels.begin());
          }
        }
      } catch (const weave::exception& e) {
        bad.check(e.code() == weave::errc::shut_down,
                  "refused with " + weave::render(e.error()));
      }
      shut.wait();
      for (auto& p : pools) {
        auto f = p->submit([] { return 1; });
        bad.check(f.done(), "a pool missed by shutdown accepted a job");
      }
      for (auto& l : loops)
        bad.check(l->stopped(), "a loop missed by shutdown");
      for (auto& c : channels)
        bad.check(c->closed(), "a channel missed by shutdown");
      for (auto& f : timed)
        bad.check(f.wait_for(weave::test::patience),
                  "a timed job was never answered");
    }};
    std::thread submitter{[&] {
      started.count_down();
      // Submits to the default pool until shutdown refuses: at once,
      // either getting the pool or submitting to it.
      try {
        for (;;) {
          auto f = rt.default_pool().submit([] { return 1; });
          if (f.done() && !f.get_result())
            break;
        }
      } catch (const weave::exception& e) {
        bad.check(e.code() == weave::errc::shut_down,
                  "default_pool refused with " + weave::render(e.error()));
      }
    }};
    started.wait();
    try {
      rt.shutdown(5s);
    } catch (...) {
      bad.add("shutdown threw");
    }
    shut.count_down();
    creator.join();
    submitter.join();
    made += round_made;
  }
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                            - t0)
                .count();
  std::printf("lifecycle: %d rounds of components racing shutdown in %.2fs; "
              "%ld created; threads running now %zu\n",
              rounds, secs, made, weave::thread_census::running());
  CHECK(bad.messages() == "");
  CHECK(weave::thread_census::running() == before);
}
