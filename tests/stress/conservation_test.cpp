// Conservation under faults: every submitted job ends exactly once, as ok,
// failed, cancelled or timed out, and the counters add up exactly.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/// Sanitizers make every job several times slower: a fifth of the jobs
/// keeps each case within the same time (as in tests/pool_conservation.hpp).
constexpr int job_divisor = 5;
#else
constexpr int job_divisor = 1;
#endif

constexpr int submitters = 4;
constexpr int jobs_per_submitter = 250000 / job_divisor; // 1,000,000 in all
constexpr int actor_jobs = 100000 / job_divisor;

struct tally {
  std::atomic<long> ok{0}, failed{0}, cancelled{0}, timed_out{0}, other{0};

  void count(const caf::error& err) {
    if (weave::is(err, weave::errc::job_failed))
      ++failed;
    else if (weave::is(err, weave::errc::cancelled))
      ++cancelled;
    else if (weave::is(err, weave::errc::timeout)
             || err == caf::sec::request_timeout)
      ++timed_out;
    else
      ++other;
  }

  long total() const {
    return ok + failed + cancelled + timed_out + other;
  }
};

/// A job that throws about 10% of the time, std and non-std exceptions.
int faulty(int i) {
  if (i % 20 == 7)
    throw std::runtime_error("std failure");
  if (i % 20 == 13)
    throw i; // not a std::exception
  return i;
}

} // namespace

TEST_CASE("1,000,000 jobs from plain threads: submitted == ok + failed + "
          "cancelled + timed out") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 4, "stress"};
  tally t;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int s = 0; s < submitters; ++s)
    threads.emplace_back([&, s] {
      std::mt19937 rng(static_cast<unsigned>(s));
      std::vector<weave::future<int>> fs;
      fs.reserve(jobs_per_submitter);
      for (int i = 0; i < jobs_per_submitter; ++i) {
        auto roll = rng() % 100;
        if (roll < 5) // a deadline that is often missed while queued
          fs.push_back(pool.submit([i] { return faulty(i); }, 1us));
        else
          fs.push_back(pool.submit([i] { return faulty(i); }));
        if (roll >= 95) // cancel right away: wins if still queued
          fs.back().cancel();
      }
      for (auto& f : fs) {
        auto r = f.get_result();
        if (r)
          ++t.ok;
        else
          t.count(r.error());
      }
    });
  for (auto& th : threads)
    th.join();
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                            - t0)
                .count();
  long submitted = long{submitters} * jobs_per_submitter;
  std::printf("conservation: %ld jobs in %.2fs: ok %ld, failed %ld, cancelled "
              "%ld, timed out %ld, other %ld\n",
              submitted, secs, t.ok.load(), t.failed.load(),
              t.cancelled.load(), t.timed_out.load(), t.other.load());
  CHECK(t.total() == submitted);
  CHECK(t.other.load() == 0);
  CHECK(t.failed.load() > 0);
  CHECK(t.cancelled.load() > 0);
  auto s = pool.stats();
  CHECK(s.completed + s.failed + s.cancelled == static_cast<size_t>(submitted));
  CHECK(s.completed == static_cast<size_t>(t.ok.load()));
  CHECK(s.failed == static_cast<size_t>(t.failed.load()));
}

TEST_CASE("100,000 offloads from an actor with timeouts and cancellations: "
          "each answered exactly once") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 4, "actor-stress"};
  auto t = std::make_shared<tally>();
  weave::promise<void> all_done;
  auto t0 = std::chrono::steady_clock::now();
  rt.system().spawn([&pool, t, all_done](caf::event_based_actor* self) mutable {
    auto pending = std::make_shared<long>(actor_jobs);
    auto finish = [=]() mutable {
      if (--*pending == 0) {
        all_done.set_value();
        self->quit();
      }
    };
    std::mt19937 rng(42);
    for (int i = 0; i < actor_jobs; ++i) {
      auto roll = rng() % 100;
      auto on_ok = [=](int) mutable {
        ++t->ok;
        finish();
      };
      auto on_err = [=](caf::error& err) mutable {
        t->count(err);
        finish();
      };
      if (roll < 5) {
        weave::offload(self, pool, [i] { return faulty(i); }, 1us)
          .then(on_ok, on_err);
      } else {
        auto h = weave::offload(self, pool, [i] { return faulty(i); });
        h.then(on_ok, on_err);
        if (roll >= 95)
          h.cancel();
      }
    }
  });
  all_done.get_future().get();
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                            - t0)
                .count();
  std::printf("actor conservation: %d offloads in %.2fs: ok %ld, failed %ld, "
              "cancelled %ld, timed out %ld, other %ld\n",
              actor_jobs, secs, t->ok.load(), t->failed.load(),
              t->cancelled.load(), t->timed_out.load(), t->other.load());
  CHECK(t->total() == actor_jobs);
  CHECK(t->other.load() == 0);
}

TEST_CASE("1,000,000 token jobs with cancels before and while they run and "
          "random deadlines: submitted == ok + failed + cancelled_queued + "
          "cancelled_running + timed_out, exactly") {
  constexpr int per_submitter = 250000 / job_divisor;
  constexpr int batch = 64;
  auto census_before = weave::thread_census::running();
  {
    weave::runtime rt;
    weave::blocking_pool pool{rt, 4, "stoppable"};
    std::atomic<long> ok{0}, failed{0}, cancelled_queued{0},
      cancelled_running{0}, timed_out_queued{0}, timed_out_running{0},
      other{0};
    std::vector<std::thread> threads;
    for (int s = 0; s < submitters; ++s)
      threads.emplace_back([&, s] {
        std::mt19937 rng(static_cast<unsigned>(100 + s));
        // Per job: did it start (set by the job itself)?
        auto started = std::make_unique<std::atomic<bool>[]>(per_submitter);
        std::vector<weave::future<int>> fs;
        fs.reserve(per_submitter);
        std::vector<int> cancel_later;
        for (int i = 0; i < per_submitter; ++i) {
          auto roll = rng() % 100;
          auto& flag = started[static_cast<size_t>(i)];
          bool slow = i % 8 == 0 || (roll >= 90 && roll < 95);
          auto job = [i, slow, &flag](weave::stop_token st) {
            flag.store(true);
            if (slow) // takes a while: a cancel may land while it runs
              weave::sleep_for(st, 50us);
            return faulty(i);
          };
          if (roll < 5)
            fs.push_back(
              pool.submit(job, std::chrono::microseconds{rng() % 50}));
          else
            fs.push_back(pool.submit(job));
          if (roll >= 95)
            fs.back().cancel(); // usually still queued
          else if (roll >= 90)
            cancel_later.push_back(i); // often running or done by then
          if (i % batch == batch - 1) {
            // The queue is short now: this batch's jobs run or ran.
            fs[static_cast<size_t>(i - batch / 2)].wait();
            for (auto k : cancel_later)
              fs[static_cast<size_t>(k)].cancel();
            cancel_later.clear();
          }
        }
        for (auto k : cancel_later)
          fs[static_cast<size_t>(k)].cancel();
        for (size_t i = 0; i < fs.size(); ++i) {
          auto r = fs[i].get_result();
          bool ran = started[i].load();
          if (r)
            ++ok;
          else if (weave::is(r.error(), weave::errc::job_failed))
            ++failed;
          else if (weave::is(r.error(), weave::errc::cancelled))
            ++(ran ? cancelled_running : cancelled_queued);
          else if (weave::is(r.error(), weave::errc::timeout))
            ++(ran ? timed_out_running : timed_out_queued);
          else
            ++other;
        }
      });
    for (auto& th : threads)
      th.join();
    long submitted = long{submitters} * per_submitter;
    std::printf("token conservation: ok %ld, failed %ld, cancelled queued "
                "%ld, cancelled running %ld, timed out queued %ld, timed out "
                "running %ld, other %ld\n",
                ok.load(), failed.load(), cancelled_queued.load(),
                cancelled_running.load(), timed_out_queued.load(),
                timed_out_running.load(), other.load());
    CHECK(ok + failed + cancelled_queued + cancelled_running
            + timed_out_queued + timed_out_running
          == submitted);
    CHECK(other.load() == 0);
    CHECK(cancelled_queued.load() > 0);
    CHECK(cancelled_running.load() > 0);
    auto st = pool.stats();
    CHECK(st.completed == static_cast<size_t>(ok.load()));
    CHECK(st.failed == static_cast<size_t>(failed.load()));
    CHECK(st.stopped
          == static_cast<size_t>(cancelled_running + timed_out_running));
    CHECK(st.cancelled
          == static_cast<size_t>(cancelled_queued + timed_out_queued));
    CHECK(st.quarantined_total == 0);
  }
  // Every thread the runtime started has ended.
  CHECK(weave::test::eventually(
    [&] { return weave::thread_census::running() == census_before; }));
}
