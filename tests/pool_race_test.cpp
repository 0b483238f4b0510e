// blocking_pool races and failures with windows too narrow to hit by chance:
// a worker held between taking a job and running it while shutdown passes
// its deadline (every job still ends exactly once, and its caller hears at
// the deadline), and worker spawns that fail (the counters are rolled back,
// every job is answered, shutdown waits for no worker that never existed).
// Uses the pool's test hooks (runtime/internal/pool_hooks.hpp).
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "runtime/internal/pool_hooks.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::internal::pool_hook_point;
using weave::test::latch;

static_assert(weave::internal::pool_hooks_enabled,
              "pool_race_test must link //runtime:runtime_test_hooks");

namespace {

/// A shutdown deadline that passes while a worker is held in a hook.
constexpr auto short_deadline = std::chrono::milliseconds{20};

/// A deadline a shutdown must not wait for (it has nothing to wait for).
constexpr auto long_deadline = std::chrono::seconds{20};

/// What the installed hook does for the pool named `pool`.
struct hook_plan {
  std::string pool;
  /// Hold the first worker that reaches `hold_at` until `release`.
  bool hold = false;
  pool_hook_point hold_at = pool_hook_point::started;
  std::shared_ptr<latch> reached = std::make_shared<latch>(1);
  std::shared_ptr<latch> release = std::make_shared<latch>(1);
  std::atomic<bool> held_once{false};
  /// The first `spawns_ok` spawns succeed, the next `spawn_failures` throw
  /// (negative: all of them).
  int spawns_ok = 0;
  int spawn_failures = 0;
  std::atomic<int> spawns{0};
  std::atomic<int> spawns_failed{0};
  /// Spawn number `slow_spawn` signals `in_spawn`, then takes `spawn_delay`
  /// (creates the condition: another thread's spawn comes meanwhile).
  int slow_spawn = -1;
  std::shared_ptr<latch> in_spawn = std::make_shared<latch>(1);
  std::chrono::milliseconds spawn_delay{0};
};

std::mutex plan_mtx;
std::shared_ptr<hook_plan> current_plan;

void hook(pool_hook_point point, const std::string& pool) {
  std::shared_ptr<hook_plan> p;
  {
    std::unique_lock<std::mutex> guard{plan_mtx};
    p = current_plan;
  }
  if (!p || pool != p->pool)
    return;
  if (point == pool_hook_point::spawning) {
    auto n = p->spawns++;
    if (n == p->slow_spawn) {
      p->in_spawn->count_down();
      std::this_thread::sleep_for(p->spawn_delay);
    }
    if (n >= p->spawns_ok
        && (p->spawn_failures < 0 || n < p->spawns_ok + p->spawn_failures)) {
      ++p->spawns_failed;
      throw std::system_error(std::make_error_code(
                                std::errc::resource_unavailable_try_again),
                              "injected: no thread for you");
    }
    return;
  }
  if (p->hold && point == p->hold_at && !p->held_once.exchange(true)) {
    p->reached->count_down();
    p->release->wait(std::chrono::hours{1});
  }
}

/// Installs a plan for the scope of a test; releases a held worker on exit.
class installed_plan {
public:
  explicit installed_plan(std::shared_ptr<hook_plan> p) : plan_(std::move(p)) {
    std::unique_lock<std::mutex> guard{plan_mtx};
    current_plan = plan_;
    weave::internal::set_pool_hook(hook);
  }

  ~installed_plan() {
    plan_->release->count_down();
    std::unique_lock<std::mutex> guard{plan_mtx};
    current_plan = nullptr;
  }

  installed_plan(const installed_plan&) = delete;
  installed_plan& operator=(const installed_plan&) = delete;

private:
  std::shared_ptr<hook_plan> plan_;
};

std::shared_ptr<hook_plan> hold_plan(std::string pool, pool_hook_point at) {
  auto p = std::make_shared<hook_plan>();
  p->pool = std::move(pool);
  p->hold = true;
  p->hold_at = at;
  return p;
}

std::shared_ptr<hook_plan> spawn_plan(std::string pool, int ok, int failures) {
  auto p = std::make_shared<hook_plan>();
  p->pool = std::move(pool);
  p->spawns_ok = ok;
  p->spawn_failures = failures;
  return p;
}

} // namespace

TEST_CASE("a job its worker has claimed but not yet run is abandoned by a "
          "shutdown that passes its deadline: its caller hears shut_down") {
  weave::runtime rt;
  auto plan = hold_plan("claimed", pool_hook_point::started);
  installed_plan installed{plan};
  weave::blocking_pool pool{rt, 1, "claimed"};
  auto ran = std::make_shared<std::atomic<bool>>(false);
  auto fut = pool.submit([ran] {
    *ran = true;
    return 1;
  });
  REQUIRE(plan->reached->wait());
  auto report = pool.shutdown(short_deadline);
  CHECK(report.jobs_abandoned == 1u);
  CHECK(report.threads_abandoned == 1u);
  CHECK(report.threads_joined == 0u);
  // Answered at the deadline, not whenever the worker gets to it.
  REQUIRE(fut.done());
  auto res = fut.get_result();
  REQUIRE_FALSE(res);
  CHECK(weave::is(res.error(), weave::errc::shut_down));
  plan->release->count_down();
  // The worker runs the job and drops its late result; the runtime's
  // shutdown then finds the worker gone and nothing left running.
  auto final_report = rt.shutdown(long_deadline);
  CHECK(ran->load());
  CHECK(final_report.jobs_abandoned == 0u);
  CHECK(final_report.threads_abandoned == 0u);
}

TEST_CASE("a job its worker took from the queue but has not claimed when "
          "shutdown passes its deadline is answered shut_down and never "
          "runs") {
  weave::runtime rt;
  auto plan = hold_plan("popped", pool_hook_point::popped);
  installed_plan installed{plan};
  weave::blocking_pool pool{rt, 1, "popped"};
  auto ran = std::make_shared<std::atomic<bool>>(false);
  auto fut = pool.submit([ran] {
    *ran = true;
    return 1;
  });
  REQUIRE(plan->reached->wait());
  auto report = pool.shutdown(short_deadline);
  // It never started: answered like a queued job, not abandoned.
  CHECK(report.jobs_cancelled == 1u);
  CHECK(report.jobs_abandoned == 0u);
  CHECK(report.threads_abandoned == 1u);
  REQUIRE(fut.done());
  auto res = fut.get_result();
  REQUIRE_FALSE(res);
  CHECK(weave::is(res.error(), weave::errc::shut_down));
  plan->release->count_down();
  auto final_report = rt.shutdown(long_deadline);
  CHECK_FALSE(ran->load());
  CHECK(final_report.jobs_abandoned == 0u);
  CHECK(final_report.threads_abandoned == 0u);
  CHECK(pool.stats().cancelled == 1u);
  CHECK(pool.stats().completed == 0u);
}

TEST_CASE("a job cancelled while its worker holds it untaken is answered "
          "once, cancelled, and the worker goes on") {
  weave::runtime rt;
  auto plan = hold_plan("raced", pool_hook_point::popped);
  installed_plan installed{plan};
  weave::blocking_pool pool{rt, 1, "raced"};
  auto ran = std::make_shared<std::atomic<bool>>(false);
  auto fut = pool.submit([ran] {
    *ran = true;
    return 1;
  });
  REQUIRE(plan->reached->wait());
  CHECK(fut.cancel());
  plan->release->count_down();
  // The worker skips the cancelled job and runs the next one.
  auto next = pool.submit([] { return 2; });
  REQUIRE(next.wait_for(weave::test::patience));
  CHECK(next.get() == 2);
  auto res = fut.get_result();
  REQUIRE_FALSE(res);
  CHECK(weave::is(res.error(), weave::errc::cancelled));
  CHECK_FALSE(ran->load());
  auto report = pool.shutdown(long_deadline);
  CHECK(report.jobs_abandoned == 0u);
  CHECK(report.jobs_cancelled == 0u);
  CHECK(report.threads_joined == 1u);
  auto s = pool.stats();
  CHECK(s.cancelled == 1u);
  CHECK(s.completed == 1u);
}

TEST_CASE("a failed worker spawn with no worker running answers the job "
          "with a clear error, and the pool starts a worker later") {
  weave::runtime rt;
  auto plan = spawn_plan("nothread", 0, 1);
  installed_plan installed{plan};
  weave::blocking_pool pool{rt, 1, "nothread"};
  weave::future<int> first;
  try {
    first = pool.submit([] { return 1; });
  } catch (const std::exception& e) {
    FAIL("submit threw instead of answering its future: "
         << std::string{e.what()});
  }
  REQUIRE(first.wait_for(weave::test::patience));
  auto res = first.get_result();
  REQUIRE_FALSE(res);
  CHECK(weave::is(res.error(), weave::errc::job_failed));
  auto msg = weave::render(res.error());
  CHECK(msg.find("could not start a worker") != std::string::npos);
  CHECK(msg.find("injected: no thread for you") != std::string::npos);
  CHECK(plan->spawns_failed.load() == 1);
  CHECK(pool.stats().workers == 0u);
  // The counters were rolled back: the next submit starts worker 0.
  auto second = pool.submit([] { return weave::this_thread_name(); });
  REQUIRE(second.wait_for(weave::test::patience));
  CHECK(second.get() == "nothread_0");
  CHECK(pool.stats().workers == 1u);
  auto report = pool.shutdown(long_deadline);
  CHECK(report.threads_joined == 1u);
  CHECK(report.threads_abandoned == 0u);
}

TEST_CASE("shutdown does not wait for a worker whose spawn failed") {
  weave::runtime rt;
  auto plan = spawn_plan("ghost", 0, -1);
  installed_plan installed{plan};
  weave::blocking_pool pool{rt, 2, "ghost"};
  weave::future<int> futs[3];
  try {
    for (auto& f : futs)
      f = pool.submit([] { return 1; });
  } catch (const std::exception& e) {
    FAIL("submit threw instead of answering its future: "
         << std::string{e.what()});
  }
  for (auto& f : futs) {
    REQUIRE(f.wait_for(weave::test::patience));
    auto res = f.get_result();
    REQUIRE_FALSE(res);
    CHECK(weave::is(res.error(), weave::errc::job_failed));
  }
  auto s = pool.stats();
  CHECK(s.workers == 0u);
  CHECK(s.queued == 0u);
  CHECK(s.cancelled == 3u);
  auto t0 = std::chrono::steady_clock::now();
  auto report = pool.shutdown(long_deadline);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(report.threads_abandoned == 0u);
  CHECK(report.threads_joined == 0u);
  // Nothing to wait for (the bug: the whole deadline).
  CHECK(took < long_deadline / 2);
}

TEST_CASE("when a second worker cannot be spawned, the queued job runs on "
          "the worker that exists") {
  weave::runtime rt;
  auto plan = spawn_plan("onlyone", 1, -1);
  installed_plan installed{plan};
  weave::blocking_pool pool{rt, 2, "onlyone"};
  latch started{1};
  latch release{1};
  auto first = pool.submit([&] {
    started.count_down();
    release.wait();
    return 1;
  });
  REQUIRE(started.wait());
  weave::future<int> second;
  try {
    second = pool.submit([] { return 2; });
  } catch (const std::exception& e) {
    release.count_down();
    FAIL("submit threw instead of queueing its job: "
         << std::string{e.what()});
  }
  CHECK(plan->spawns_failed.load() >= 1);
  CHECK_FALSE(second.done()); // queued for the busy worker, not failed
  release.count_down();
  REQUIRE(second.wait_for(weave::test::patience));
  CHECK(second.get() == 2);
  CHECK(first.get() == 1);
  CHECK(pool.stats().workers == 1u);
  auto report = pool.shutdown(long_deadline);
  CHECK(report.threads_joined == 1u);
  CHECK(report.threads_abandoned == 0u);
}

TEST_CASE("a worker waiting for its own pool's queued job when no other "
          "worker can be spawned fails with would_deadlock") {
  weave::runtime rt;
  auto plan = spawn_plan("stranded", 1, -1);
  installed_plan installed{plan};
  weave::blocking_pool pool{rt, 2, "stranded"};
  auto outer = pool.submit([&pool]() -> std::string {
    weave::future<int> inner;
    try {
      inner = pool.submit([] { return 1; });
    } catch (const std::exception& e) {
      return std::string{"submit threw: "} + e.what();
    }
    try {
      return "got " + std::to_string(inner.get());
    } catch (const weave::exception& e) {
      return e.code() == weave::errc::would_deadlock
               ? std::string{"would_deadlock"}
               : std::string{"other error: "} + e.what();
    } catch (const std::exception& e) {
      return std::string{"other exception: "} + e.what();
    }
  });
  REQUIRE(outer.wait_for(weave::test::patience));
  CHECK(outer.get() == "would_deadlock");
}

TEST_CASE("a spawn that fails while another thread spawns leaves every "
          "worker its own index") {
  // Spawn 1 fails slowly; meanwhile another submit starts a worker. A
  // failed spawn used to give back its index after the other spawn had
  // taken the next one, so a later worker got an index (slot, name) twice.
  constexpr auto delay = std::chrono::milliseconds{50};
  weave::runtime rt;
  auto plan = spawn_plan("unique", 1, 1);
  plan->slow_spawn = 1;
  plan->spawn_delay = delay;
  installed_plan installed{plan};
  weave::blocking_pool pool{rt, 3, "unique"};
  auto release = std::make_shared<latch>(1);
  auto running = std::make_shared<latch>(3);
  auto names_mtx = std::make_shared<std::mutex>();
  auto names = std::make_shared<std::vector<std::string>>();
  auto held = [release, running, names_mtx, names] {
    {
      std::unique_lock<std::mutex> guard{*names_mtx};
      names->push_back(weave::this_thread_name());
    }
    running->count_down();
    release->wait(std::chrono::hours{1});
    return 1;
  };
  weave::test::failures bad;
  auto submit_from_thread = [&](weave::future<int>& out) {
    try {
      out = pool.submit(held);
    } catch (const std::exception& e) {
      bad.add(std::string{"submit threw: "} + e.what());
    }
  };
  std::vector<weave::future<int>> futs;
  futs.push_back(pool.submit(held)); // worker 0
  weave::future<int> by_a;
  weave::future<int> by_b;
  std::thread a{[&] { submit_from_thread(by_a); }}; // its spawn fails
  REQUIRE(plan->in_spawn->wait());
  std::thread b{[&] { submit_from_thread(by_b); }}; // spawns meanwhile
  a.join();
  b.join();
  // One job still waits for a worker: one more submit starts the third.
  futs.push_back(pool.submit([] { return 2; }));
  auto all_running = running->wait();
  release->count_down();
  CHECK(bad.messages() == "");
  REQUIRE(all_running);
  futs.push_back(std::move(by_a));
  futs.push_back(std::move(by_b));
  for (auto& f : futs) {
    REQUIRE(f.valid());
    REQUIRE(f.wait_for(weave::test::patience));
    CHECK(f.get_result());
  }
  CHECK(plan->spawns_failed.load() == 1);
  CHECK(pool.stats().workers == 3u);
  std::unique_lock<std::mutex> guard{*names_mtx};
  std::set<std::string> distinct(names->begin(), names->end());
  CHECK(names->size() == 3u);
  CHECK(distinct
        == std::set<std::string>{"unique_0", "unique_1", "unique_2"});
}
