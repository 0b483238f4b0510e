// rt.metrics() counts exactly: known workloads (N jobs, M failures, K
// cancelled, quarantine, drops by each policy, blocked producers, loop
// tasks) and every counter compared with what was done; snapshots taken
// while work runs and after shutdown.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/prometheus.hpp"
#include "runtime/weave.hpp"
#include "tests/prometheus_parser.hpp"
#include "tests/stop_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::eventually;
using weave::test::latch;

namespace {

template <class T>
const T* by_name(const std::vector<T>& xs, const std::string& name) {
  for (auto& x : xs)
    if (x.name == name)
      return &x;
  return nullptr;
}

/// A time a job or loop task is held for, to be seen in a histogram.
constexpr auto hold = 30ms;

} // namespace

TEST_CASE("pool metrics count every job exactly: completed, failed, stopped, "
          "cancelled, queued, busy, and both histograms") {
  weave::runtime rt{weave::test::config(weave::test::long_grace)};
  constexpr size_t workers = 2;
  constexpr int ok_jobs = 20;
  constexpr int failing_jobs = 7;
  constexpr int cancelled_jobs = 5;
  weave::blocking_pool pool{rt, workers, "io"};
  std::vector<weave::future<int>> fs;
  for (int i = 0; i < ok_jobs; ++i)
    fs.push_back(pool.submit([i] { return i; }));
  for (int i = 0; i < failing_jobs; ++i)
    fs.push_back(pool.submit([]() -> int { throw std::runtime_error{"no"}; }));
  for (auto& f : fs)
    REQUIRE(f.wait_for(weave::test::patience));
  // Both workers held: one plain job, one that honours its stop token.
  auto entered = std::make_shared<latch>(1);
  auto release = std::make_shared<latch>(1);
  auto plain = pool.submit([entered, release] {
    entered->count_down();
    release->wait();
    return 1;
  });
  weave::test::token_job tj;
  auto stoppable = pool.submit(tj.honouring());
  REQUIRE(entered->wait());
  REQUIRE(tj.entered->wait());
  std::vector<weave::future<int>> queued;
  for (int i = 0; i < cancelled_jobs; ++i)
    queued.push_back(pool.submit([] { return 0; }));
  auto waiter = pool.submit([] { return 2; }); // waits, then runs
  auto m = rt.metrics();
  auto p = by_name(m.pools, "io");
  REQUIRE(p != nullptr);
  CHECK(p->max_workers == workers);
  CHECK(p->workers == workers);
  CHECK(p->threads == workers);
  CHECK(p->busy == workers);
  CHECK(p->queued == cancelled_jobs + 1);
  for (auto& f : queued)
    CHECK(f.cancel());
  std::this_thread::sleep_for(hold); // `waiter` waits at least this long
  release->count_down();
  CHECK(waiter.get() == 2);
  CHECK(stoppable.cancel());
  REQUIRE(stoppable.wait_for(weave::test::patience));
  CHECK(plain.get() == 1);
  m = rt.metrics();
  p = by_name(m.pools, "io");
  REQUIRE(p != nullptr);
  CHECK(p->completed == ok_jobs + 2);
  CHECK(p->failed == failing_jobs);
  CHECK(p->stopped == 1);
  CHECK(p->cancelled == cancelled_jobs);
  CHECK(p->queued == 0);
  CHECK(p->busy == 0);
  CHECK(p->quarantined == 0);
  // Every job that started is in both histograms, once.
  constexpr uint64_t started = ok_jobs + failing_jobs + 3;
  CHECK(p->queue_wait.count() == started);
  CHECK(p->run_time.count() == started);
  CHECK(p->queue_wait.quantile_bound_ns(1.0) >= 30'000'000);
  CHECK(p->run_time.quantile_bound_ns(1.0) >= 30'000'000);
  CHECK(p->run_time.sum_ns >= 30'000'000);
  CHECK(p->busy_ratio > 0);
  CHECK(p->busy_ratio <= 1);
  CHECK(p->age_ns > 0);
  auto later = rt.metrics();
  CHECK(weave::busy_ratio(*by_name(later.pools, "io"), *p) == 0); // idle
  // The Prometheus text says the same.
  weave::test::prom_exposition e;
  REQUIRE(parse_prometheus(weave::to_prometheus(m), e) == "");
  CHECK(e.value("weave_pool_jobs_completed_total", {{"pool", "io"}})
        == ok_jobs + 2);
  CHECK(e.value("weave_pool_jobs_failed_total", {{"pool", "io"}})
        == failing_jobs);
  CHECK(e.value("weave_pool_jobs_cancelled_total", {{"pool", "io"}})
        == cancelled_jobs);
  CHECK(e.value("weave_pool_run_seconds_count", {{"pool", "io"}}) == started);
}

TEST_CASE("pool metrics count a quarantined worker and its thread until the "
          "stuck job returns") {
  weave::runtime rt{weave::test::config(weave::test::short_grace)};
  weave::blocking_pool pool{rt, 1, "stuck"};
  weave::test::token_job tj;
  auto f = pool.submit(tj.ignoring());
  REQUIRE(tj.entered->wait());
  CHECK(f.cancel());
  REQUIRE(f.wait_for(weave::test::patience));
  CHECK(pool.submit([] { return 3; }).get() == 3); // on the replacement
  auto p = *by_name(rt.metrics().pools, "stuck");
  CHECK(p.quarantined == 1);
  CHECK(p.quarantined_total == 1);
  CHECK(p.workers == 1);
  CHECK(p.threads == 2);
  CHECK(p.run_time.count() == 1); // the stuck one has not ended
  tj.release->count_down();
  CHECK(eventually([&] {
    return by_name(rt.metrics().pools, "stuck")->threads == 1;
  }));
  p = *by_name(rt.metrics().pools, "stuck");
  CHECK(p.quarantined == 0);
  CHECK(p.quarantined_total == 1);
  CHECK(p.run_time.count() == 2);
}

TEST_CASE("channel metrics count drops by drop_newest and drop_oldest, "
          "refusals by fail, and the high-water mark") {
  weave::runtime rt;
  constexpr size_t capacity = 4;
  constexpr int items = 10;
  weave::channel<int> newest{rt, "newest", capacity,
                             weave::overflow::drop_newest};
  weave::channel<int> oldest{rt, "oldest", capacity,
                             weave::overflow::drop_oldest};
  weave::channel<int> fail{rt, "fail", capacity, weave::overflow::fail};
  weave::channel<int> unnamed{rt, capacity};
  for (int i = 0; i < items; ++i) {
    newest.put(i);
    oldest.put(i);
    fail.try_put(i);
  }
  constexpr int taken = 3;
  for (int i = 0; i < taken; ++i) {
    CHECK(newest.try_get().status == weave::channel_status::ok);
    CHECK(oldest.try_get().status == weave::channel_status::ok);
  }
  auto m = rt.metrics();
  auto n = by_name(m.channels, "newest");
  auto o = by_name(m.channels, "oldest");
  auto fl = by_name(m.channels, "fail");
  REQUIRE(n != nullptr);
  REQUIRE(o != nullptr);
  REQUIRE(fl != nullptr);
  CHECK(n->capacity == capacity);
  CHECK(n->puts == capacity);
  CHECK(n->drops == items - capacity);
  CHECK(n->gets == taken);
  CHECK(n->depth == capacity - taken);
  CHECK(n->high_water == capacity);
  CHECK(o->puts == items);
  CHECK(o->drops == items - capacity);
  CHECK(o->gets == taken);
  CHECK(o->depth == capacity - taken);
  CHECK(fl->puts == capacity);
  CHECK(fl->refused == items - capacity);
  CHECK(fl->drops == 0);
  CHECK(newest.name() == "newest");
  CHECK(unnamed.name() == "");
  CHECK(by_name(m.channels, "channel-" + std::to_string(unnamed.id()))
        != nullptr);
  CHECK(m.channels.size() == 4);
}

TEST_CASE("channel metrics count blocked producers exactly, and none once "
          "they are released") {
  weave::runtime rt;
  constexpr int producers = 3;
  weave::channel<int> ch{rt, "narrow", 1};
  ch.put(0);
  std::vector<std::thread> threads;
  for (int i = 1; i <= producers; ++i)
    threads.emplace_back([ch, i]() mutable { ch.put(i); });
  auto blocked = [&] {
    return by_name(rt.metrics().channels, "narrow")->blocked_producers;
  };
  CHECK(eventually([&] { return blocked() == producers; }));
  for (int i = 0; i <= producers; ++i)
    CHECK(ch.get().status == weave::channel_status::ok);
  for (auto& t : threads)
    t.join();
  auto c = *by_name(rt.metrics().channels, "narrow");
  CHECK(c.blocked_producers == 0);
  CHECK(c.puts == producers + 1);
  CHECK(c.gets == producers + 1);
  CHECK(c.high_water == 1);
  CHECK(c.depth == 0);
  ch.close();
  CHECK(by_name(rt.metrics().channels, "narrow")->closed);
}

TEST_CASE("loop metrics count every task run, and its lag") {
  weave::runtime rt;
  constexpr int posts = 15;
  constexpr int submits = 5;
  weave::loop lp{rt, "ticker"};
  lp.set_exception_handler([](const caf::error&) {});
  auto started = std::make_shared<latch>(1);
  auto go = std::make_shared<std::atomic<bool>>(false);
  // The first task holds the loop until the test lets it go, so the second
  // waits (lags) at least `hold`.
  lp.post([started, go] {
    started->count_down();
    while (!go->load())
      std::this_thread::sleep_for(1ms);
  });
  REQUIRE(started->wait());
  lp.post([] {});
  std::this_thread::sleep_for(hold);
  go->store(true);
  for (int i = 2; i < posts - 1; ++i)
    lp.post([] {});
  lp.post([]() { throw std::runtime_error{"posted and failed"}; });
  for (int i = 0; i < submits - 1; ++i)
    lp.submit([] { return 0; });
  CHECK(lp.submit([] { return 1; }).get() == 1); // after all the others
  auto l = *by_name(rt.metrics().loops, "ticker");
  CHECK(l.lag.count() == posts + submits);
  CHECK(l.posted == posts);
  CHECK(l.submitted == submits);
  CHECK(l.post_failures == 1);
  CHECK(l.own_thread);
  CHECK_FALSE(l.ended);
  CHECK(l.lag.quantile_bound_ns(1.0) >= 30'000'000);
  CHECK(l.lag.sum_ns >= 30'000'000);
  lp.stop();
  lp.join();
  CHECK(by_name(rt.metrics().loops, "ticker")->ended);
}

TEST_CASE("metrics can be taken while jobs run on many threads and after "
          "shutdown; the final counts are exact") {
  constexpr int submitters = 4;
  constexpr int per = 500;
  auto rt = std::make_unique<weave::runtime>();
  weave::blocking_pool pool{*rt, 3, "busy"};
  std::atomic<bool> stop{false};
  std::thread watcher{[&] {
    while (!stop.load()) {
      auto text = weave::to_prometheus(rt->metrics());
      weave::test::prom_exposition e;
      if (parse_prometheus(text, e) != "")
        break; // checked below
    }
  }};
  std::vector<std::thread> threads;
  for (int t = 0; t < submitters; ++t)
    threads.emplace_back([&pool] {
      std::vector<weave::future<int>> fs;
      for (int i = 0; i < per; ++i)
        fs.push_back(pool.submit([i] { return i; }));
      for (auto& f : fs)
        f.get();
    });
  for (auto& t : threads)
    t.join();
  stop.store(true);
  watcher.join();
  auto p = *by_name(rt->metrics().pools, "busy");
  CHECK(p.completed == submitters * per);
  CHECK(p.queue_wait.count() == submitters * per);
  CHECK(p.run_time.count() == submitters * per);
  weave::test::prom_exposition e;
  CHECK(parse_prometheus(weave::to_prometheus(rt->metrics()), e) == "");
  rt->shutdown();
  auto after = rt->metrics();
  CHECK(by_name(after.pools, "busy")->completed == submitters * per);
  CHECK(after.scheduler.size() == after.threads.scheduler);
}
