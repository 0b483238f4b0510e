#pragma once

// The conservation run shared by the process pool's and the remote pool's
// stress suites: 100,000 jobs over 3 workers, one worker killed mid-run.
// Every job has exactly one outcome (submitted == ok + failed +
// worker_lost), no job that is not idempotent runs twice (the workers log
// each execution), idempotent jobs all complete, and a job marked "not
// started" never ran.

#include <doctest/doctest.h>

#include <dirent.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "runtime/weave.hpp"
#include "tests/process_pool_jobs.hpp"
#include "tests/process_pool_support.hpp"
#include "tests/test_support.hpp"

namespace weave::test::conservation {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/// Sanitizers make every message several times slower: a fifth of the jobs
/// keeps the run within the same time.
constexpr uint64_t total_jobs = 20000;
#else
constexpr uint64_t total_jobs = 100000;
#endif

constexpr size_t stress_workers = 3;
constexpr size_t stress_capacity = 64;
/// Two threads per worker: two jobs running and two claimed ahead each.
constexpr size_t stress_threads = 2;

/// Every this many jobs, one throws (`job_failed`).
constexpr uint64_t fail_every = 97;

inline bool is_idempotent(uint64_t tag) {
  return tag % 2 == 1;
}

/// Runs the conservation check on `pool` (`stress_workers` workers of
/// `stress_threads` threads and `stress_capacity` jobs each); `kill_one`
/// kills one worker process mid-run; the whole run must take less than
/// `run_patience`.
template <class Pool, class Kill>
void run(Pool& pool, Kill kill_one, std::chrono::seconds run_patience) {
  auto dir = scratch_dir();
  std::vector<weave::future<int32_t>> futures;
  futures.reserve(total_jobs);
  auto submit = [&](uint64_t tag) {
    bool fail = tag % fail_every == 0;
    futures.push_back(is_idempotent(tag)
                        ? pool.submit(tally_idempotent(tag, dir, fail))
                        : pool.submit(tally(tag, dir, fail)));
  };
  auto started = std::chrono::steady_clock::now();
  uint64_t tag = 0;
  for (; tag < total_jobs / 3; ++tag)
    submit(tag);
  // Mid-run: a sixth has finished, two thirds are not even submitted.
  REQUIRE(eventually(
    [&] {
      auto st = pool.stats();
      return st.completed + st.failed >= total_jobs / 6;
    },
    std::chrono::duration_cast<std::chrono::milliseconds>(run_patience)));
  kill_one();
  for (; tag < total_jobs; ++tag)
    submit(tag);
  size_t ok = 0;
  size_t failed = 0;
  size_t lost = 0;
  size_t other = 0;
  std::map<uint64_t, bool> lost_not_started;
  for (uint64_t i = 0; i < total_jobs; ++i) {
    auto res = futures[i].get_result();
    if (res) {
      ++ok;
    } else if (weave::is(res.error(), weave::errc::job_failed)) {
      ++failed;
    } else if (weave::is(res.error(), weave::errc::worker_lost)) {
      ++lost;
      lost_not_started[i] = !weave::maybe_executed(res.error());
      CHECK_MESSAGE(!is_idempotent(i), "idempotent job " << i << " lost");
    } else {
      ++other;
      MESSAGE("job " << i << ": " << weave::render(res.error()));
    }
  }
  auto took = std::chrono::steady_clock::now() - started;
  MESSAGE(total_jobs << " jobs over " << stress_workers << " workers, one "
          "killed: " << ok << " ok, " << failed << " failed, " << lost
          << " worker_lost, in "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took)
               .count()
          << " ms");
  CHECK(other == 0);
  CHECK(ok + failed + lost == total_jobs);
  CHECK(took < run_patience);
  auto seen = all_executions(dir);
  size_t twice = 0;
  size_t lost_but_unstarted_ran = 0;
  size_t answered_not_run = 0;
  for (uint64_t i = 0; i < total_jobs; ++i) {
    auto n = seen.count(i) != 0 ? seen[i] : 0;
    auto l = lost_not_started.find(i);
    if (!is_idempotent(i) && n > 1)
      ++twice;
    if (l != lost_not_started.end() && l->second && n != 0)
      ++lost_but_unstarted_ran;
    // A job answered with its value or its exception ran.
    if (l == lost_not_started.end() && n == 0)
      ++answered_not_run;
  }
  CHECK(twice == 0);
  CHECK(lost_but_unstarted_ran == 0);
  CHECK(answered_not_run == 0);
  auto st = pool.stats();
  CHECK(st.completed == ok);
  CHECK(st.failed == failed);
  CHECK(st.lost == lost);
  CHECK(st.workers_lost == 1);
  CHECK(st.in_flight == 0);
  CHECK(st.queued == 0);
}

} // namespace weave::test::conservation
