// The blocking detector: a handler that holds a scheduler thread past the
// threshold is reported once, by actor; quick handlers are not; the user's
// callback runs without weave's lock.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/internal/blocking_detector.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto threshold = 50ms;
constexpr auto held_for = 300ms; // well past the threshold
constexpr size_t scheduler_workers = 2;
/// How long A waits for B: well below the relaxed timeout (10 s), well above
/// the watchdog's look period (50 ms).
constexpr auto steal_bound = std::chrono::seconds{5};
/// How often the test looks at the workers' published idle state.
constexpr auto idle_poll = std::chrono::milliseconds{5};

/// Spawns a function actor with one (unused) argument. CAF 0.17.6 binds a
/// null reference when a function actor has none (see tools/ubsan.supp);
/// under UBSan the first such suppressed report takes ~50 ms to symbolize,
/// inside the actor's first resume, which the detector then rightly reports.
template <class F>
caf::actor spawn_with_arg(caf::actor_system& sys, F fn) {
  return sys.spawn([fn](int) mutable -> caf::behavior { return fn(); }, 0);
}

/// Waits (bounded) until every scheduler worker of `rt` sleeps.
bool all_workers_asleep(weave::runtime& rt) {
  auto det = weave::internal::runtime_access::detector(rt);
  if (det == nullptr)
    return false;
  auto until = std::chrono::steady_clock::now() + weave::test::patience;
  while (std::chrono::steady_clock::now() < until) {
    bool asleep = true;
    for (size_t i = 0; auto s = det->at(i); ++i)
      if (s->idle.load() != weave::internal::blocking_detector::idle_state::
                              sleeping)
        asleep = false;
    if (asleep)
      return true;
    std::this_thread::sleep_for(idle_poll);
  }
  return false;
}

/// Holds a scheduler worker past the threshold, once (fire and forget).
void block_a_worker(weave::runtime& rt) {
  auto sleepy = rt.system().spawn(
    [](caf::event_based_actor* self, int) -> caf::behavior {
      return {[self](int) {
        std::this_thread::sleep_for(held_for); // the mistake, on purpose
        self->quit();
      }};
    },
    0);
  caf::anon_send(sleepy, 1);
}

} // namespace

TEST_CASE("a handler that blocks a scheduler thread is reported, once") {
  weave::runtime_config cfg;
  cfg.set("weave.blocking-threshold", caf::timespan{threshold});
  weave::runtime rt{std::move(cfg)};
  std::mutex mtx;
  std::vector<weave::slow_handler_event> events;
  rt.on_slow_handler([&](const weave::slow_handler_event& ev) {
    std::lock_guard<std::mutex> guard{mtx};
    events.push_back(ev);
  });
  caf::scoped_actor test{rt.system()};
  auto quick = spawn_with_arg(rt.system(), []() -> caf::behavior {
    return {[](int x) { return x; }};
  });
  for (int i = 0; i < 100; ++i)
    test->request(quick, weave::test::patience, i)
      .receive([](int) {}, [](caf::error&) {});
  auto sleepy = spawn_with_arg(rt.system(), []() -> caf::behavior {
    return {[](int x) {
      std::this_thread::sleep_for(held_for); // the mistake being detected
      return x;
    }};
  });
  test->request(sleepy, weave::test::patience, 1)
    .receive([](int) {}, [](caf::error&) {});
  // The detector counts a report before its callback runs (and may report
  // a descheduled quick handler too): wait until the sleepy one's report
  // arrived, then until every counted report did.
  REQUIRE(weave::test::eventually([&] {
    std::lock_guard<std::mutex> guard{mtx};
    for (auto& ev : events)
      if (ev.actor == sleepy.id())
        return true;
    return false;
  }));
  CHECK(weave::test::eventually([&] {
    std::lock_guard<std::mutex> guard{mtx};
    return rt.slow_handlers() == events.size();
  }));
  std::lock_guard<std::mutex> guard{mtx};
  for (auto& ev : events)
    MESSAGE("reported: actor #" << ev.actor << " on worker " << ev.worker
                                << " for " << ev.held.count() / 1000000
                                << " ms; the sleepy one is #" << sleepy.id());
  // The sleepy handler is reported exactly once. (A quick handler whose
  // thread the OS descheduled past the threshold — a sanitizer on a busy
  // machine — is reported too, rightly: the detector sees wall time.)
  size_t of_sleepy = 0;
  for (auto& ev : events)
    if (ev.actor == sleepy.id()) {
      ++of_sleepy;
      CHECK(ev.held >= threshold);
    }
  CHECK(of_sleepy == 1u);
  caf::anon_send_exit(quick, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(sleepy, caf::exit_reason::user_shutdown);
}

TEST_CASE("work queued behind a stuck scheduler worker is stolen by a "
          "sleeping one, long before the relaxed timeout") {
  // A handler that blocks (the mistake) sends to B first, so B is queued on
  // the same worker. The other worker sleeps for the whole relaxed timeout
  // (10 s) unless the watchdog wakes it to steal B, so A's wait for B ends
  // only through that wake-up.
  weave::runtime_config cfg;
  cfg.set("scheduler.max-threads", size_t{scheduler_workers});
  cfg.set("weave.blocking-threshold", caf::timespan{1s}); // no report noise
  weave::runtime rt{std::move(cfg)};
  weave::test::latch b_ran{1};
  auto b = rt.system().spawn([&]() -> caf::behavior {
    return {[&](int) { b_ran.count_down(); }};
  });
  weave::promise<bool> outcome;
  auto result = outcome.get_future();
  // The promise is captured by value: the test may end (and its stack go)
  // as soon as the value is set, while `set_value` is still returning.
  std::atomic<long> waited_ms{-1};
  auto a = rt.system().spawn([&, b, outcome](caf::event_based_actor* self) {
    self->become([&, self, b, outcome](int x) mutable {
      self->send(b, x); // from a scheduler thread: queued on this worker
      auto t0 = std::chrono::steady_clock::now();
      auto ok = b_ran.wait(steal_bound); // holds this worker until B ran
      waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
      outcome.set_value(ok); // our own copy: the test may end right now
    });
  });
  // Both workers asleep first: the one woken for A is then the only one
  // awake, and nothing but the watchdog's wake-up lets the other run B.
  REQUIRE(all_workers_asleep(rt));
  caf::anon_send(a, 1);
  CHECK(result.get());
  MESSAGE("B ran after " << waited_ms.load() << " ms");
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
}

TEST_CASE("a slow-handler callback may replace the callback without "
          "deadlocking") {
  weave::runtime_config cfg;
  cfg.set("weave.blocking-threshold", caf::timespan{threshold});
  weave::runtime rt{std::move(cfg)};
  weave::test::latch replaced{1};
  rt.on_slow_handler([&](const weave::slow_handler_event&) {
    // Replaces itself while it runs (it stays alive until it returns).
    rt.on_slow_handler([](const weave::slow_handler_event&) {});
    replaced.count_down();
  });
  block_a_worker(rt);
  CHECK(replaced.wait());
}

TEST_CASE("replacing the slow-handler callback does not wait for a running "
          "one") {
  weave::runtime_config cfg;
  cfg.set("weave.blocking-threshold", caf::timespan{threshold});
  weave::runtime rt{std::move(cfg)};
  weave::test::latch in_callback{1};
  weave::test::latch release{1};
  rt.on_slow_handler([&](const weave::slow_handler_event&) {
    in_callback.count_down();
    release.wait(); // a slow callback, on purpose
  });
  block_a_worker(rt);
  REQUIRE(in_callback.wait());
  weave::test::latch replaced{1};
  std::thread other{[&] {
    rt.on_slow_handler([](const weave::slow_handler_event&) {});
    replaced.count_down();
  }};
  bool not_held_back = replaced.wait();
  release.count_down();
  other.join();
  CHECK(not_held_back);
}

TEST_CASE("a handler that blocks right after a quiet spell is still reported") {
  // While idle the watchdog backs off; the worker that wakes up with work
  // pokes it, so a 300 ms handler is seen even after the back-off grew
  // past 300 ms (without the poke it could end before the next look and
  // never be reported).
  weave::runtime_config cfg;
  cfg.set("weave.blocking-threshold", caf::timespan{threshold});
  // By actor: another handler whose thread stopped past the short
  // threshold (a sanitizer on a busy machine) is reported too, rightly.
  // (Before the runtime: they outlive its callbacks.)
  std::mutex mtx;
  std::vector<caf::actor_id> reported;
  weave::runtime rt{std::move(cfg)};
  rt.on_slow_handler([&](const weave::slow_handler_event& ev) {
    std::lock_guard<std::mutex> guard{mtx};
    reported.push_back(ev.actor);
  });
  auto sleepy = spawn_with_arg(rt.system(), []() -> caf::behavior {
    return {[](int x) {
      std::this_thread::sleep_for(held_for);
      return x;
    }};
  });
  auto reports_of_sleepy = [&] {
    std::lock_guard<std::mutex> guard{mtx};
    return std::count(reported.begin(), reported.end(), sleepy.id());
  };
  // Quiet: the watchdog's looks back off to 25 ms * 2^k after the last
  // activity (~3.2 s, then ~6.4 s), so without the poke none would fall
  // inside the handler's 300 ms starting at ~3.3 s.
  std::this_thread::sleep_for(3300ms);
  caf::scoped_actor test{rt.system()};
  test->request(sleepy, weave::test::patience, 1)
    .receive([](int) {}, [](caf::error&) {});
  // Seen while the handler ran; the callback may run just after it.
  CHECK(weave::test::eventually([&] { return reports_of_sleepy() > 0; }));
  // Every counted report's callback has run; the sleepy one's came once.
  CHECK(weave::test::eventually([&] {
    std::lock_guard<std::mutex> guard{mtx};
    return rt.slow_handlers() == reported.size();
  }));
  CHECK(reports_of_sleepy() == 1);
  caf::anon_send_exit(sleepy, caf::exit_reason::user_shutdown);
}

TEST_CASE("a slow-handler callback that never returns does not hold the "
          "runtime's shutdown past its deadline") {
  constexpr auto deadline = 200ms;
  constexpr auto margin = 2s; // the runtime's own margin, and a loaded machine
  weave::runtime_config cfg;
  cfg.set("weave.blocking-threshold", caf::timespan{threshold});
  auto rt = std::make_unique<weave::runtime>(std::move(cfg));
  auto in_callback = std::make_shared<weave::test::latch>(1);
  auto release = std::make_shared<weave::test::latch>(1);
  rt->on_slow_handler([in_callback, release](const weave::slow_handler_event&) {
    in_callback->count_down();
    release->wait(std::chrono::hours{1}); // never returns, as far as weave knows
  });
  block_a_worker(*rt);
  REQUIRE(in_callback->wait());
  auto t0 = std::chrono::steady_clock::now();
  auto report = rt->shutdown(deadline);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took < deadline + margin);
  CHECK(report.threads_abandoned >= 1u); // the watchdog, stuck in the callback
  // Destroying the runtime does not wait for the callback either.
  weave::test::latch destroyed{1};
  std::thread destroyer{[&] {
    rt.reset();
    destroyed.count_down();
  }};
  auto in_time = destroyed.wait(5s);
  release->count_down();
  destroyer.join();
  CHECK(in_time);
}
