// remote_pool conservation under load: 100,000 jobs over 3 remote workers
// (listening worker processes started by the test), one killed mid-run. Every job has exactly one outcome (submitted == ok
// + failed + worker_lost), no job that is not idempotent runs twice (the
// workers log each execution), idempotent jobs all complete, and a job
// marked "not started" never ran.
#include <doctest/doctest.h>

#include <dirent.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/remote_pool.hpp"
#include "runtime/weave.hpp"
#include "tests/process_pool_jobs.hpp"
#include "tests/remote_pool_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::test;

namespace {

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

/// How long the whole run may take (about 30 s on a busy 2-core machine).
constexpr auto run_patience = std::chrono::seconds{150};

bool is_idempotent(uint64_t tag) {
  return tag % 2 == 1;
}

/// Executions per tag, over every worker's log in `dir`.
std::map<uint64_t, int> all_executions(const std::string& dir) {
  std::map<uint64_t, int> result;
  if (auto d = ::opendir(dir.c_str())) {
    while (auto e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.rfind("exec.", 0) != 0)
        continue;
      for (auto& kv : executions(dir + "/" + name))
        result[kv.first] += kv.second;
    }
    ::closedir(d);
  }
  return result;
}

} // namespace

TEST_CASE("conservation on a remote pool: 100,000 jobs over 3 workers, one "
          "killed mid-run, each job has one outcome and none that is not "
          "idempotent runs twice") {
  weave::runtime rt{remote_config()};
  std::vector<std::string> flags{
    "--weave-worker-threads=" + std::to_string(stress_threads),
    "--weave-worker-capacity=" + std::to_string(stress_capacity)};
  std::vector<std::unique_ptr<worker_process>> workers;
  weave::remote_pool_options opts;
  for (size_t i = 0; i < stress_workers; ++i) {
    workers.push_back(std::make_unique<worker_process>(flags));
    REQUIRE_MESSAGE(workers.back()->port() != 0, workers.back()->line());
    opts.workers.push_back(workers.back()->address());
  }
  weave::remote_pool pool{rt, opts};
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
  workers.at(0)->stop(SIGKILL);
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
