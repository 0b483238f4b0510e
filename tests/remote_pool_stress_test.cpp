// remote_pool conservation under load (see tests/pool_conservation.hpp):
// 100,000 jobs over 3 remote workers (listening worker processes started by
// the test), one killed mid-run.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "runtime/remote_pool.hpp"
#include "tests/pool_conservation.hpp"
#include "tests/remote_pool_support.hpp"

using namespace weave::test;
using namespace weave::test::conservation;

/// How long the whole run may take (about 30 s on a busy 2-core machine);
/// the case declares a timeout beyond it (the suite's watchdog allows 60 s
/// by default), with room to start the workers and shut down.
constexpr auto run_patience = std::chrono::seconds{150};

TEST_CASE("conservation on a remote pool: 100,000 jobs over 3 workers, one "
          "killed mid-run, each job has one outcome and none that is not "
          "idempotent runs twice"
          * doctest::timeout(run_patience.count() + 60)) {
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
  conservation::run(
    pool, [&workers] { workers.at(0)->stop(SIGKILL); }, run_patience);
}
