// Review of the fourteenth session's shutdown changes (c9c4e71, 3aa4a11,
// e3651e1): each case failed on the code it was written against.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "actors/process_actor.hpp"
#include "runtime/process_pool.hpp"
#include "runtime/weave.hpp"
#include "tests/process_pool_jobs.hpp"
#include "tests/process_pool_support.hpp"
#include "tests/process_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::test;

namespace {

/// The runtime's shutdown (deadline 100 ms) of a runtime holding one
/// process pool whose only worker is frozen with a job running (its
/// SIGTERM goes out at the deadline, its SIGKILL a grace later: the pools
/// phase ends past deadline + reap_grace) and one process actor whose child
/// (`sh`) exited long before, leaving a grandchild that holds its stdout
/// and stderr (so those pumps end only when the shutdown stops them).
/// With `frozen` false the worker is not frozen: it ends at its SIGTERM
/// and the pools phase ends at the deadline. Returns the report.
weave::shutdown_report run(bool frozen) {
  auto dir = scratch_dir();
  auto log = dir + "/log";
  weave::shutdown_report report;
  int grandchild = 0;
  weave::future<int32_t> running;
  {
    weave::runtime rt{pool_config()};
    weave::process_pool pool{rt, pool_options(1)};
    auto worker = pool.worker_pids().at(0);
    REQUIRE(pool.submit(square(3)).get() == 9);
    running = pool.submit(hold(0, log, dir + "/never"));
    REQUIRE(eventually([&] { return lines_in(log) == 1; }));
    auto p = weave::actors::spawn_process(
      rt, sh("sleep 20 & echo $!"));
    auto line = p.out->get(patience);
    REQUIRE(line);
    grandchild = std::stoi(*line.value);
    REQUIRE(p.exited.wait_for(5s)); // the child itself is gone (reaped)
    p.actor = nullptr;
    if (frozen)
      REQUIRE(freeze(worker));
    report = rt.shutdown(100ms);
    MESSAGE(report.to_string());
  }
  if (grandchild > 0)
    ::kill(grandchild, SIGKILL);
  return report;
}

} // namespace

TEST_CASE("a process actor whose child was reaped before the deadline still "
          "has its reap grace for its pumps when its finish_shutdown runs "
          "after a pool's SIGTERM grace") {
  // The reap grace counts from `killed_at_`, which stays at the epoch for a
  // child that needed no SIGKILL: its limit is deadline + reap_grace, past
  // by the time the blockers phase comes after a pool that waited its
  // SIGTERM grace from the deadline. The pumps it stops then are given no
  // time and counted abandoned in its part, which the final report's
  // threads_abandoned (CAF's count) overwrites: counted nowhere.
  // The same runtime with the worker not frozen: the blockers phase begins
  // at the deadline and the process actor's four threads (reaper, three
  // pumps) are joined.
  auto plain = run(false);
  auto late = run(true);
  CHECK(plain.threads_abandoned == 0);
  CHECK(late.threads_abandoned == 0);
  CHECK(late.threads_joined == plain.threads_joined);
}
