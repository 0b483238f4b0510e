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

constexpr int submitters = 4;
constexpr int jobs_per_submitter = 250000; // 1,000,000 in all
constexpr int actor_jobs = 100000;

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
