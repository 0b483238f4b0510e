// The stop ladder's acceptance figures: how soon a job that polls its token
// and its caller hear of a 50 ms deadline (p99 over 1,000 runs, printed),
// and a pool of 2 that keeps working while a job that ignores its token is
// given up on.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::errc;
using weave::test::latch;
using clock_type = std::chrono::steady_clock;

namespace {

/// The deadline of each timed job.
constexpr auto job_deadline = 50ms;

/// Runs measured at once (the pool has a worker for each).
constexpr size_t parallel_runs = 10;

/// How often a polling job looks at its token.
constexpr auto poll_interval = 250us;

/// Runs in all.
constexpr size_t total_runs = 1000;

/// The bounds asserted (loose: sanitizer builds, ThreadSanitizer's among
/// them, on a 2-core machine); the figures reached are printed beside
/// them (plain and UBSan builds: about 1 ms). They catch a caller answered
/// only at the grace period's end or later.
constexpr auto caller_bound_p99 = 100ms;
constexpr auto job_bound_p99 = 100ms;

double p99_ms(std::vector<clock_type::duration>& xs) {
  std::sort(xs.begin(), xs.end());
  auto i = std::min(xs.size() - 1, xs.size() * 99 / 100);
  return std::chrono::duration<double, std::milli>(xs[i]).count();
}

} // namespace

TEST_CASE("a job polling its token with a 50 ms deadline: the job sees the "
          "stop and its caller hears timeout soon after the deadline (p99 "
          "over 1,000 runs)") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, parallel_runs, "polling"};
  {
    // Warm-up: every worker started before anything is measured (workers
    // start one at a time, slowly under a sanitizer).
    auto all_in = std::make_shared<latch>(parallel_runs);
    std::vector<weave::future<void>> warm;
    for (size_t i = 0; i < parallel_runs; ++i)
      warm.push_back(pool.submit([all_in] {
        all_in->count_down();
        all_in->wait();
      }));
    for (auto& w : warm)
      w.get();
  }
  std::vector<clock_type::duration> caller_late;
  std::vector<clock_type::duration> job_late;
  size_t timeouts = 0;
  for (size_t done = 0; done < total_runs; done += parallel_runs) {
    struct run {
      clock_type::time_point deadline;
      std::shared_ptr<std::atomic<int64_t>> seen_ns;
      weave::future<int> f;
    };
    std::vector<run> runs;
    for (size_t i = 0; i < parallel_runs; ++i) {
      auto seen = std::make_shared<std::atomic<int64_t>>(0);
      auto start = clock_type::now();
      auto f = pool.submit(
        [seen](weave::stop_token st) {
          while (!st.stop_requested()) // a check between slices of work
            std::this_thread::sleep_for(poll_interval);
          seen->store(clock_type::now().time_since_epoch().count());
          return 0;
        },
        job_deadline);
      runs.push_back(run{start + job_deadline, seen, std::move(f)});
    }
    for (auto& r : runs) {
      auto res = r.f.get_result();
      auto heard = clock_type::now();
      if (!res && res.error().code() == static_cast<uint8_t>(errc::timeout))
        ++timeouts;
      caller_late.push_back(heard - r.deadline);
      clock_type::time_point seen{clock_type::duration{r.seen_ns->load()}};
      job_late.push_back(seen - r.deadline);
    }
  }
  CHECK(timeouts == total_runs);
  auto caller = p99_ms(caller_late);
  auto job = p99_ms(job_late);
  auto st = pool.stats();
  std::printf("stop ladder: caller hears timeout %.2f ms after the deadline, "
              "job sees the stop %.2f ms after it (p99 of %zu runs); "
              "stopped %zu, cancelled %zu, quarantined %zu\n",
              caller, job, total_runs, st.stopped, st.cancelled,
              st.quarantined_total);
  CHECK(caller
        < std::chrono::duration<double, std::milli>(caller_bound_p99).count());
  CHECK(job < std::chrono::duration<double, std::milli>(job_bound_p99).count());
}

TEST_CASE("on a pool of 2, a job that ignores its token is answered at "
          "deadline + grace, its worker is quarantined and replaced, and 100 "
          "jobs queued behind it all complete before it returns") {
  constexpr auto grace = 30ms;
  constexpr int short_jobs = 100;
  weave::runtime_config cfg;
  cfg.set("weave.cancel-grace", caf::timespan{grace});
  weave::runtime rt{cfg};
  weave::blocking_pool pool{rt, 2, "pair"};
  auto entered = std::make_shared<latch>(1);
  auto release = std::make_shared<latch>(1);
  auto stuck_returned = std::make_shared<std::atomic<bool>>(false);
  auto start = clock_type::now();
  auto stuck = pool.submit(
    [entered, release, stuck_returned](weave::stop_token) {
      entered->count_down();
      release->wait(std::chrono::hours{1}); // ignores its token
      stuck_returned->store(true);
      return -1;
    },
    job_deadline);
  REQUIRE(entered->wait());
  auto before_stuck_returned = std::make_shared<std::atomic<int>>(0);
  std::vector<weave::future<int>> fs;
  for (int i = 0; i < short_jobs; ++i)
    fs.push_back(pool.submit([i, stuck_returned, before_stuck_returned] {
      if (!stuck_returned->load())
        before_stuck_returned->fetch_add(1);
      return i;
    }));
  auto r = stuck.get_result();
  auto heard = clock_type::now() - start;
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == static_cast<uint8_t>(errc::timeout));
  CHECK(heard >= job_deadline + grace);
  for (int i = 0; i < short_jobs; ++i)
    CHECK(fs[static_cast<size_t>(i)].get() == i);
  CHECK(before_stuck_returned->load() == short_jobs);
  auto s = pool.stats();
  CHECK(s.quarantined == 1);
  CHECK(s.quarantined_total == 1);
  CHECK(s.completed == static_cast<size_t>(short_jobs));
  CHECK(s.workers <= 2);
  release->count_down();
  CHECK(weave::test::eventually([&] {
    auto t = pool.stats();
    return t.quarantined == 0 && t.stopped == 1;
  }));
  CHECK(pool.stats().completed == static_cast<size_t>(short_jobs));
  CHECK(pool.stats().failed == 0);
}
