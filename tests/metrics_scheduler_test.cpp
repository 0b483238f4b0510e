// rt.metrics() of the scheduler and of threads: one entry per scheduler
// worker with its slow handlers, busy time, resumes, parks and steals, and
// threads counted by role.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
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

/// The blocking detector's threshold where a slow handler is wanted.
constexpr auto slow_threshold = 20ms;

} // namespace

TEST_CASE("scheduler metrics: one entry per worker, a slow handler counted "
          "on its worker, busy time, resumes and parks") {
  constexpr size_t sched = 2;
  weave::runtime_config cfg;
  cfg.set("scheduler.max-threads", sched);
  cfg.set("weave.blocking-threshold", caf::timespan{slow_threshold});
  weave::runtime rt{std::move(cfg)};
  auto reported = std::make_shared<latch>(1);
  rt.on_slow_handler(
    [reported](const weave::slow_handler_event&) { reported->count_down(); });
  weave::promise<void> done;
  rt.system().spawn([done](caf::event_based_actor*) mutable {
    std::this_thread::sleep_for(5 * slow_threshold); // holds its worker
    done.set_value();
  });
  REQUIRE(reported->wait());
  done.get_future().get();
  auto m = rt.metrics();
  REQUIRE(m.scheduler.size() == sched);
  CHECK(m.threads.scheduler == sched);
  uint64_t slow = 0;
  for (auto& w : m.scheduler)
    slow += w.slow_handlers;
  // The sleeper, at least (another handler descheduled past the short
  // threshold on a busy machine is counted too); the workers' counts add up
  // to the runtime's.
  CHECK(slow >= 1);
  CHECK(m.slow_handlers == slow);
  CHECK(rt.slow_handlers() >= slow);
  // The turn's busy time is counted when it ends (just after `done`).
  auto busy = [&] {
    uint64_t ns = 0;
    for (auto& w : rt.metrics().scheduler)
      ns += w.busy_ns;
    return ns;
  };
  CHECK(eventually([&] { return busy() >= 100'000'000; }));
  // Each actor below runs once, in a turn of its own.
  constexpr int actors = 50;
  uint64_t before = 0;
  for (auto& w : rt.metrics().scheduler)
    before += w.resumes;
  for (int i = 0; i < actors; ++i) {
    weave::promise<void> ran;
    auto f = ran.get_future();
    rt.system().spawn(
      [ran](caf::event_based_actor*) mutable { ran.set_value(); });
    f.get();
  }
  // The last turn is counted as it ends, just after its promise.
  auto resumes = [&] {
    uint64_t n = 0;
    for (auto& w : rt.metrics().scheduler)
      n += w.resumes;
    return n;
  };
  CHECK(eventually([&] { return resumes() - before >= actors; }));
  uint64_t parks = 0;
  for (auto& w : rt.metrics().scheduler)
    parks += w.parks;
  CHECK(parks > 0); // idle workers parked between the actors
}

TEST_CASE("a scheduler worker that takes work queued behind a busy worker "
          "counts a steal") {
  weave::runtime_config cfg;
  cfg.set("scheduler.max-threads", size_t{2});
  cfg.set("weave.blocking-threshold", caf::timespan{10ms});
  weave::runtime rt{std::move(cfg)};
  rt.on_slow_handler([](const weave::slow_handler_event&) {});
  auto ran = std::make_shared<latch>(1);
  weave::promise<void> done;
  rt.system().spawn([ran, done](caf::event_based_actor* self) mutable {
    // Queued on this worker, which then stays in this turn until another
    // worker has taken and run it.
    self->spawn([ran](caf::event_based_actor*) { ran->count_down(); });
    ran->wait();
    done.set_value();
  });
  done.get_future().get();
  CHECK(ran->ready());
  uint64_t steals = 0;
  for (auto& w : rt.metrics().scheduler)
    steals += w.steals;
  CHECK(steals >= 1);
}

TEST_CASE("threads by role: scheduler, pool workers, own-thread loops and "
          "blockers") {
  constexpr size_t sched = 3;
  weave::runtime_config cfg;
  cfg.set("scheduler.max-threads", sched);
  weave::runtime rt{std::move(cfg)};
  constexpr size_t workers = 2;
  weave::blocking_pool pool{rt, workers, "held"};
  auto entered = std::make_shared<latch>(workers + 1);
  auto release = std::make_shared<latch>(1);
  std::vector<weave::future<int>> fs;
  for (size_t i = 0; i < workers; ++i)
    fs.push_back(pool.submit([entered, release] {
      entered->count_down();
      release->wait();
      return 0;
    }));
  auto b = weave::spawn_blocker(rt, [entered, release] {
    entered->count_down();
    release->wait();
    return 0;
  });
  weave::loop own{rt, "own"};
  weave::loop shared{rt, "shared", weave::loop::shared};
  REQUIRE(entered->wait());
  auto m = rt.metrics();
  CHECK(m.threads.scheduler == sched);
  CHECK(by_name(m.pools, "held")->threads == workers);
  size_t pool_threads = 0;
  for (auto& p : m.pools)
    pool_threads += p.threads;
  CHECK(m.threads.pool_workers == pool_threads);
  CHECK(m.threads.loops == 1);
  CHECK(m.threads.blockers == 1);
  // A scheduler thread is counted when it first runs, which on a loaded
  // machine may come after the jobs above started: wait for it (bounded).
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  while (m.threads.running
           < sched + workers + m.threads.loops + m.threads.blockers
         && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
    m = rt.metrics();
  }
  CHECK(m.threads.running
        >= sched + workers + m.threads.loops + m.threads.blockers);
  CHECK(m.threads.started >= m.threads.running);
  release->count_down();
  for (auto& f : fs)
    CHECK(f.get() == 0);
  CHECK(b.get() == 0);
  CHECK(eventually([&] { return rt.metrics().threads.blockers == 0; }));
}

