// process_pool conservation under load (see tests/pool_conservation.hpp):
// 100,000 jobs over 3 workers, one worker killed mid-run.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>

#include "runtime/process_pool.hpp"
#include "tests/pool_conservation.hpp"

using namespace weave::test;
using namespace weave::test::conservation;

/// How long the whole run may take (the goal is ~20 s on 2 cores); the
/// case declares a timeout beyond it (the suite's watchdog allows 60 s by
/// default), with room to start the workers and shut down.
constexpr auto run_patience = std::chrono::seconds{50};

TEST_CASE("conservation: 100,000 jobs over 3 workers, one killed mid-run, "
          "each job has one outcome and none that is not idempotent runs "
          "twice"
          * doctest::timeout(run_patience.count() + 60)) {
  weave::runtime rt{pool_config()};
  auto opts = pool_options(stress_workers);
  opts.capacity = stress_capacity;
  opts.threads_per_worker = stress_threads;
  weave::process_pool pool{rt, opts};
  conservation::run(
    pool,
    [&pool] {
      auto victim = pool.worker_pids().at(0);
      REQUIRE(victim > 0);
      REQUIRE(::kill(victim, SIGKILL) == 0);
    },
    run_patience);
}
