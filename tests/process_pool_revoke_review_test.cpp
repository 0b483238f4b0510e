// process_pool revoke, the edges of retries and timers: a retried job that
// may have run on its lost worker is never answered "not started"; a job
// whose timeout passed is not retried after it; timed grants do not keep
// the pool's client actor alive past its job.
#include <doctest/doctest.h>

#include <dirent.h>
#include <signal.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "runtime/process_pool.hpp"
#include "runtime/weave.hpp"
#include "tests/process_pool_jobs.hpp"
#include "tests/process_pool_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::test;

namespace {

using clock_type = std::chrono::steady_clock;

size_t claimed(const weave::process_pool& pool) {
  return weave::internal::process_pool_access::claimed(pool);
}

/// Two one-thread workers, each may hold a few jobs.
weave::process_pool_options two_workers() {
  auto opts = pool_options(2);
  opts.threads_per_worker = 1;
  opts.capacity = 4;
  return opts;
}

} // namespace

TEST_CASE("a retried job cancelled while its second worker holds it is "
          "answered maybe executed when it ran on the lost worker") {
  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, two_workers()};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto gate = dir + "/gate";
  auto pids = pool.worker_pids();
  // X first: it goes to worker 0 and runs there; L to worker 1.
  auto x = pool.submit(hold_idempotent(1, log, gate));
  auto l = pool.submit(hold(2, log, gate));
  REQUIRE(eventually([&] { return lines_in(log) == 2; }));
  ::kill(pids.at(0), SIGKILL);
  // X, retried, waits in worker 1 behind L.
  REQUIRE(eventually(
    [&] { return pool.stats().retried == 1 && claimed(pool) == 2; }));
  x.cancel();
  REQUIRE(x.wait_for(10s));
  auto err = error_of(x);
  REQUIRE(err);
  CHECK(weave::is(err, weave::errc::cancelled));
  CHECK(weave::maybe_executed(err));
  touch(gate);
  CHECK(l.get() == pids.at(1));
  CHECK(executions(log)[1] == 1); // ran on the lost worker only
}

TEST_CASE("a job whose worker is lost after its timeout passed is answered "
          "timeout and not retried") {
  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, two_workers()};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto gate_a = dir + "/gate_a";
  auto gate_b = dir + "/gate_b";
  auto pids = pool.worker_pids();
  auto l1 = pool.submit(hold(1, log, gate_a)); // worker 0
  auto l2 = pool.submit(hold(2, log, gate_b)); // worker 1
  REQUIRE(eventually([&] { return lines_in(log) == 2; }));
  // Worker 0 must be frozen before X's deadline (else the revoke reaches
  // it and X, still queued behind L1, is answered "not started"): 1 s
  // leaves room for the claim and the freeze under ThreadSanitizer.
  constexpr auto x_timeout = 1s;
  auto x_submitting = clock_type::now();
  auto x = pool.submit(tally_idempotent(3, dir, false), x_timeout); // w. 0
  auto x_submitted = clock_type::now(); // X's deadline lies between the two
  REQUIRE(eventually([&] { return claimed(pool) == 3; }));
  // Worker 0 freezes: the revoke at X's deadline gets no answer.
  REQUIRE(freeze(pids.at(0)));
  REQUIRE_MESSAGE(clock_type::now() < x_submitting + x_timeout,
                  "X's deadline passed before its worker froze");
  // Worker 1 becomes free: a retry of X would run there.
  touch(gate_b);
  CHECK(l2.get() == pids.at(1));
  // Creates the condition "X's timeout passed while its worker froze".
  std::this_thread::sleep_until(x_submitted + x_timeout + 200ms);
  ::kill(pids.at(0), SIGKILL);
  REQUIRE(x.wait_for(10s));
  auto err = error_of(x);
  REQUIRE_MESSAGE(err, "X completed with a value after its timeout");
  CHECK(weave::is(err, weave::errc::timeout));
  CHECK(weave::maybe_executed(err)); // claimed: it may have run
  CHECK(all_executions(dir).count(3) == 0);
  auto l1_err = error_of(l1);
  REQUIRE(l1_err);
  CHECK(weave::is(l1_err, weave::errc::worker_lost));
}

TEST_CASE("a completed job with a long timeout does not delay the runtime's "
          "shutdown") {
  // The bug this guards against: shutdown waits for the job's timer, that
  // is, until its deadline (10 s). Without it shutdown takes well under a
  // second; 5 s leaves room for reaping the worker under sanitizers.
  auto cfg = pool_config();
  cfg.set("weave.shutdown-deadline", caf::timespan{10s});
  weave::runtime rt{cfg};
  weave::process_pool pool{rt, pool_options(1)};
  CHECK(pool.submit(square(3), 1h).get() == 9);
  auto before = clock_type::now();
  auto report = rt.shutdown();
  auto took = clock_type::now() - before;
  MESSAGE("shutdown took "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took)
               .count()
          << " ms");
  CHECK(took < 5s);
  CHECK(report.threads_abandoned == 0);
}

TEST_CASE("with several threads per worker cancel of a running job returns "
          "false once its worker answered that it runs, and the job keeps "
          "its value") {
  weave::runtime rt{pool_config()};
  auto opts = pool_options(1);
  opts.threads_per_worker = 2;
  weave::process_pool pool{rt, opts};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto gate = dir + "/gate";
  auto worker = pool.worker_pids().at(0);
  auto x = pool.submit(hold(1, log, gate));
  REQUIRE(eventually([&] { return lines_in(log) == 1; }));
  // The first asks the worker to revoke it; it answers that it runs.
  CHECK(x.cancel());
  CHECK(eventually([&] { return !x.cancel(); }));
  touch(gate);
  CHECK(x.get() == worker);
  CHECK(pool.stats().revoked == 0);
}

namespace {

/// Two one-thread workers with the default capacity (16): a worker holding
/// 10 jobs claims no more (it claims while at most half its window of 16
/// is granted or running), so a job sent to it waits there unclaimed.
struct retried_unclaimed {
  static constexpr size_t per_worker = 10;

  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, [] {
                             auto opts = pool_options(2);
                             opts.threads_per_worker = 1;
                             return opts;
                           }()};
  std::string dir = scratch_dir();
  std::string log = dir + "/log";
  std::string gate = dir + "/gate";
  std::vector<int32_t> pids = pool.worker_pids();
  std::vector<weave::future<int32_t>> held;

  /// X (idempotent) runs on worker 0; both workers hold `per_worker` jobs;
  /// worker 0 is killed; X is retried and waits, unclaimed, in worker 1.
  template <class Submit>
  weave::future<int32_t> start(Submit submit_x) {
    auto x = submit_x(hold_idempotent(1, log, gate));
    for (uint64_t i = 0; i < 2 * per_worker - 1; ++i)
      held.push_back(pool.submit(hold(100 + i, log, gate)));
    // A worker claims while at most 8 of its jobs are granted or running,
    // so each ends with 9 or 10 claimed, by the order its claims came in.
    if (!eventually([&] { return lines_in(log) == 2; }) // X, one on worker 1
        || !eventually(
          [&] { return claimed(pool) >= 2 * (per_worker - 1); }))
      return x;
    ::kill(pids.at(0), SIGKILL);
    eventually([&] { return pool.stats().retried == 1; });
    return x;
  }

  ~retried_unclaimed() {
    touch(gate);
    for (auto& f : held)
      f.wait_for(patience);
  }
};

} // namespace

TEST_CASE("cancel of a retried job its next worker holds but has not "
          "claimed is answered at once") {
  retried_unclaimed setup;
  auto x = setup.start([&](auto job) { return setup.pool.submit(job); });
  REQUIRE(setup.pool.stats().retried == 1);
  CHECK(x.cancel());
  // The gate stays shut: worker 1 claims nothing more until it opens.
  REQUIRE_MESSAGE(x.wait_for(5s), "the cancelled retried job waits for its "
                                  "next worker's claim");
  auto err = error_of(x);
  REQUIRE(err);
  CHECK(weave::is(err, weave::errc::cancelled));
  CHECK(weave::maybe_executed(err)); // it ran on the lost worker
}

TEST_CASE("the timeout of a retried job its next worker holds but has not "
          "claimed bounds the caller's wait") {
  // Long enough for the setup (20 jobs claimed, a worker killed) under
  // ThreadSanitizer; a job whose timeout passes before its worker is lost
  // is not retried at all.
  constexpr auto x_timeout = 8s;
  retried_unclaimed setup;
  auto submitted = clock_type::now();
  auto x = setup.start(
    [&](auto job) { return setup.pool.submit(job, x_timeout); });
  REQUIRE(clock_type::now() - submitted < x_timeout); // killed in time
  REQUIRE(setup.pool.stats().retried == 1);
  REQUIRE_MESSAGE(x.wait_for(x_timeout + 5s),
                  "the retried job waits past its timeout");
  auto err = error_of(x);
  REQUIRE(err);
  CHECK(weave::is(err, weave::errc::timeout));
  CHECK(weave::maybe_executed(err));
}
