// process_pool cancellation of a running job: with one thread per worker,
// after the runtime's cancel grace the worker running it is killed, the job
// answers `cancelled`, the worker's other jobs `worker_lost` (idempotent
// ones retried), and the worker is replaced. A job that finishes within the
// grace keeps its value and its worker; with several threads per worker a
// running job cannot be stopped. (Jobs claimed but not started are revoked:
// process_pool_revoke_test.cpp.)
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "caf/all.hpp"
#include "runtime/process_pool.hpp"
#include "runtime/weave.hpp"
#include "tests/process_pool_jobs.hpp"
#include "tests/process_pool_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::test;

namespace {

/// The runtime's `weave.cancel-grace` in these tests.
constexpr auto test_grace = 100ms;

/// Beyond the grace: the delayed message, the kill and the answers on a
/// busy 2-core machine under ASan.
constexpr auto answer_margin = 2s;

/// A grace long enough for a gated job to finish inside it.
constexpr auto long_grace = 2s;

weave::runtime_config grace_config(caf::timespan grace) {
  auto cfg = pool_config();
  cfg.set("weave.cancel-grace", grace);
  return cfg;
}

} // namespace

TEST_CASE("cancelling a running job kills its worker after the grace: the "
          "job answers cancelled, the worker's other jobs worker_lost, "
          "idempotent ones retried, the worker replaced") {
  weave::runtime rt{grace_config(test_grace)};
  auto opts = pool_options(1);
  opts.capacity = 3;
  weave::process_pool pool{rt, opts};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto running = pool.submit(hold(1, log, dir + "/never"));
  auto plain = pool.submit(hold(2, log, std::string{}));
  auto idempotent = pool.submit(hold_idempotent(3, log, std::string{}));
  REQUIRE(eventually([&] {
    return pool.stats().in_flight == 3 && lines_in(log) == 1;
  }));
  auto victim = pool.worker_pids().at(0);
  auto cancelled_at = std::chrono::steady_clock::now();
  CHECK(running.cancel());
  auto err = error_of(running);
  auto answered_in = std::chrono::steady_clock::now() - cancelled_at;
  MESSAGE("running job answered "
          << std::chrono::duration_cast<std::chrono::milliseconds>(
               answered_in)
               .count()
          << " ms after cancel() (grace " << test_grace.count() << " ms)");
  CHECK(weave::is(err, weave::errc::cancelled));
  CHECK(answered_in >= test_grace);
  CHECK(answered_in < test_grace + answer_margin);
  auto lost = error_of(plain);
  CHECK(weave::is(lost, weave::errc::worker_lost));
  auto pid = idempotent.get();
  CHECK(pid != victim);
  CHECK(eventually([&] { return !listed(victim); }));
  CHECK(pool.submit(square(5)).get() == 25);
  auto seen = executions(log);
  CHECK(seen[1] == 1);
  CHECK(seen[2] <= 1);
  if (!weave::maybe_executed(lost))
    CHECK(seen.count(2) == 0);
  CHECK(seen[3] >= 1);
  auto st = pool.stats();
  CHECK(st.cancelled == 1);
  CHECK(st.workers_lost == 1);
  CHECK(st.lost == 1);
  CHECK(st.retried == 1);
  CHECK(st.workers == 1);
  // A second cancel has nothing left to stop.
  CHECK_FALSE(running.cancel());
}

TEST_CASE("cancelling a running offloaded job from an actor kills its worker "
          "after the grace and answers the actor cancelled") {
  weave::runtime rt{grace_config(test_grace)};
  weave::process_pool pool{rt, pool_options(1)};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  caf::scoped_actor self{rt.system()};
  auto victim = pool.worker_pids().at(0);
  auto handle = weave::offload(self, pool, hold(1, log, dir + "/never"));
  REQUIRE(eventually([&] { return lines_in(log) == 1; }));
  CHECK(handle.cancel());
  std::string out;
  handle.receive([&](int32_t) { out = "value"; },
                 [&](caf::error& e) { out = weave::render(e); });
  CHECK(out.find("cancelled") != std::string::npos);
  CHECK(eventually([&] { return !listed(victim); }));
  CHECK(pool.submit(square(2)).get() == 4);
  CHECK(pool.stats().cancelled == 1);
}

TEST_CASE("a cancelled job that finishes within the grace keeps its value "
          "and its worker") {
  weave::runtime rt{grace_config(long_grace)};
  weave::process_pool pool{rt, pool_options(1)};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto gate = dir + "/gate";
  auto worker = pool.worker_pids().at(0);
  auto job = pool.submit(hold(1, log, gate));
  REQUIRE(eventually([&] { return lines_in(log) == 1; }));
  CHECK(job.cancel());
  touch(gate);
  CHECK(job.get() == worker);
  // Creates the condition "the grace period is over".
  std::this_thread::sleep_for(long_grace + 200ms);
  CHECK(pool.submit(whoami()).get() == worker);
  auto st = pool.stats();
  CHECK(st.workers_lost == 0);
  CHECK(st.cancelled == 0);
  CHECK(st.completed == 2);
}

TEST_CASE("with several threads per worker a running job cannot be "
          "cancelled: it runs on and keeps its value and its worker") {
  weave::runtime rt{grace_config(test_grace)};
  auto opts = pool_options(1);
  opts.threads_per_worker = 2;
  weave::process_pool pool{rt, opts};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto gate = dir + "/gate";
  auto worker = pool.worker_pids().at(0);
  auto job = pool.submit(hold(1, log, gate));
  REQUIRE(eventually([&] { return lines_in(log) == 1; }));
  // Its worker is asked to drop it (it may not have started, as far as
  // this process knows), and answers that it runs.
  job.cancel();
  touch(gate);
  CHECK(job.get() == worker);
  auto st = pool.stats();
  CHECK(st.workers_lost == 0);
  CHECK(st.revoked == 0);
  CHECK(st.cancelled == 0);
}
