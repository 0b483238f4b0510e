// 1,000 rounds of create a runtime / submit from several threads / shut down
// while they submit: no hang, no crash, every future ends, and the thread
// census is back where it started (promise 6).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
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

TEST_CASE("create / submit / shut down, racing, 1000 times") {
  weave::test::watchdog dog{std::chrono::seconds{600}};
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
