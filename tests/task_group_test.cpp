// task_group: the first failure stops the siblings through their stop
// tokens, the group's end waits for every task, nothing outlives it.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::errc;
using weave::test::latch;

namespace {

/// Long enough that a sibling still runs when the failure comes, unless
/// its stop reaches it.
constexpr auto forever = std::chrono::hours{1};

} // namespace

TEST_CASE("a group of tasks that all succeed: wait() returns, every value "
          "is there") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 4, "group"};
  weave::task_group g{pool};
  std::vector<weave::future<int>> fs;
  for (int i = 0; i < 100; ++i)
    fs.push_back(g.submit([i] { return i * i; }));
  g.wait();
  CHECK_FALSE(g.first_error());
  for (int i = 0; i < 100; ++i)
    CHECK(fs[static_cast<size_t>(i)].get() == i * i);
}

TEST_CASE("the first failure stops the running siblings through their "
          "tokens, cancels the queued ones, and wait() throws it") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 3, "failing"};
  weave::task_group g{pool};
  auto running = std::make_shared<latch>(2);
  auto stopped = std::make_shared<std::atomic<int>>(0);
  auto queued_ran = std::make_shared<std::atomic<bool>>(false);
  std::vector<weave::future<int>> siblings;
  for (int i = 0; i < 2; ++i)
    siblings.push_back(g.submit([running, stopped](weave::stop_token st) {
      running->count_down();
      if (!weave::sleep_for(st, forever))
        stopped->fetch_add(1);
      return 0;
    }));
  REQUIRE(running->wait());
  auto bad = g.submit([]() -> int { throw std::runtime_error("boom"); });
  // Queued behind the failure (3 workers, all busy or done by then).
  auto later = g.submit([queued_ran] {
    queued_ran->store(true);
    return 1;
  });
  try {
    g.wait();
    FAIL("wait() did not throw");
  } catch (const weave::exception& e) {
    CHECK(weave::is(e.error(), errc::job_failed));
    CHECK(weave::render(e.error()).find("boom") != std::string::npos);
  }
  CHECK(stopped->load() == 2);
  for (auto& f : siblings) {
    auto r = f.get_result();
    REQUIRE_FALSE(r);
    CHECK(weave::is(r.error(), errc::cancelled));
  }
  // The queued task was cancelled or had already run: one outcome either
  // way, and never a hang.
  auto r = later.get_result();
  CHECK((r ? queued_ran->load() : weave::is(r.error(), errc::cancelled)));
}

TEST_CASE("the group's end cancels and waits: nothing started in the group "
          "outlives it") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 2, "scoped"};
  auto ended = std::make_shared<std::atomic<int>>(0);
  auto running = std::make_shared<latch>(2);
  {
    weave::task_group g{pool};
    for (int i = 0; i < 2; ++i)
      g.submit([ended, running](weave::stop_token st) {
        running->count_down();
        weave::sleep_for(st, forever);
        ended->fetch_add(1);
      });
    REQUIRE(running->wait());
  } // no wait(): the destructor stops both and waits for them
  CHECK(ended->load() == 2);
}

TEST_CASE("a task cancelled on its own is not the group's failure; cancel() "
          "stops the group without a failure") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 1, "cancels"};
  weave::task_group g{pool};
  auto gate = std::make_shared<latch>(1);
  auto first = g.submit([gate] { gate->wait(); });
  auto second = g.submit([] { return 2; });
  CHECK(second.cancel()); // queued behind `first`
  gate->count_down();
  g.wait(); // no failure
  CHECK_FALSE(g.first_error());
  weave::task_group h{pool};
  auto entered = std::make_shared<latch>(1);
  auto t = h.submit([entered](weave::stop_token st) {
    entered->count_down();
    weave::sleep_for(st, forever);
  });
  REQUIRE(entered->wait());
  h.cancel();
  h.wait();
  auto rt_ = t.get_result();
  REQUIRE_FALSE(rt_);
  CHECK(weave::is(rt_.error(), errc::cancelled));
  auto after = h.submit([] { return 3; }); // stopped group: never runs
  auto ra = after.get_result();
  REQUIRE_FALSE(ra);
  CHECK(weave::is(ra.error(), errc::cancelled));
}

TEST_CASE("tasks may add siblings; wait() waits for those too") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 4, "nested"};
  weave::task_group g{pool};
  auto count = std::make_shared<std::atomic<int>>(0);
  g.submit([&g, count] {
    for (int i = 0; i < 10; ++i)
      g.submit([count] { count->fetch_add(1); });
  });
  g.wait();
  CHECK(count->load() == 10);
}

TEST_CASE("a task group refuses a thread that must never block") {
  weave::runtime rt;
  auto verdict = std::make_shared<std::atomic<int>>(-1);
  auto done = std::make_shared<latch>(1);
  rt.system().spawn([&rt, verdict, done](caf::event_based_actor*) {
    try {
      weave::task_group g{rt.default_pool()};
      verdict->store(0);
    } catch (const weave::exception& e) {
      verdict->store(weave::is(e.error(), errc::would_deadlock) ? 1 : 2);
    }
    done->count_down();
  });
  REQUIRE(done->wait());
  CHECK(verdict->load() == 1);
}

TEST_CASE("10,000 tasks, one failing: the failure is reported once, the "
          "others are stopped or cancelled, the group ends after all ended") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 4, "many"};
  constexpr int n = 10000;
  constexpr int failing = 5000;
  auto ended = std::make_shared<std::atomic<int>>(0);
  auto started = std::make_shared<std::atomic<int>>(0);
  std::vector<weave::future<void>> fs;
  fs.reserve(n);
  caf::error first;
  {
    weave::task_group g{pool};
    for (int i = 0; i < n; ++i)
      fs.push_back(g.submit([i, ended, started](weave::stop_token st) {
        started->fetch_add(1);
        struct count_end {
          std::shared_ptr<std::atomic<int>> n;
          ~count_end() {
            n->fetch_add(1);
          }
        } c{ended};
        if (i == failing)
          throw std::runtime_error("task 5000 failed");
        weave::sleep_for(st, 100us);
      }));
    try {
      g.wait();
    } catch (const weave::exception& e) {
      first = e.error();
    }
  }
  // Every task that started had ended before the group did.
  auto started_by_end = started->load();
  CHECK(ended->load() == started_by_end);
  REQUIRE(first);
  CHECK(weave::render(first).find("task 5000 failed") != std::string::npos);
  int ok = 0;
  int failed = 0;
  int cancelled = 0;
  for (auto& f : fs) {
    auto r = f.get_result();
    if (r)
      ++ok;
    else if (weave::is(r.error(), errc::job_failed))
      ++failed;
    else if (weave::is(r.error(), errc::cancelled))
      ++cancelled;
  }
  CHECK(failed == 1);
  CHECK(ok + failed + cancelled == n);
  CHECK(cancelled > 0);
  CHECK(started_by_end >= ok + failed);
  CHECK(started->load() == started_by_end); // nothing started afterwards
}
