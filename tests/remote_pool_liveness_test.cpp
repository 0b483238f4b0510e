// remote_pool liveness: a frozen remote worker (SIGSTOP) is noticed by the
// middleman's heartbeat on the pool's side (the defaults, 500 ms + 5 s):
// the jobs it held fail with worker_lost within heartbeat + connection
// timeout, while the other node keeps serving.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
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

/// The defaults set by `enable_remote_pools`.
constexpr auto default_heartbeat = 500ms;
constexpr auto default_connection_timeout = 5s;

/// Beyond heartbeat + timeout: the tick's lag, the DOWN, and the answers
/// on a busy 2-core machine under ASan.
constexpr auto detect_margin = 4s;

/// Each node's capacity; the jobs submitted before the freeze fill both,
/// so that a job submitted during the freeze goes to the healthy node.
constexpr size_t node_capacity = 4;
constexpr size_t jobs_before = 2 * node_capacity;

} // namespace

TEST_CASE("a frozen remote worker (SIGSTOP) loses its jobs within heartbeat "
          "+ connection timeout, and the other node keeps serving") {
  weave::runtime rt{remote_config()};
  std::vector<std::string> flags{
    "--weave-worker-threads=1",
    "--weave-worker-capacity=" + std::to_string(node_capacity)};
  worker_process frozen{flags};
  worker_process healthy{flags};
  REQUIRE_MESSAGE(frozen.port() != 0, frozen.line());
  REQUIRE_MESSAGE(healthy.port() != 0, healthy.line());
  weave::remote_pool_options opts;
  opts.workers = {frozen.address(), healthy.address()};
  weave::remote_pool pool{rt, opts};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto gate = dir + "/gate";
  std::vector<weave::future<int32_t>> futures;
  for (uint64_t tag = 0; tag < jobs_before; ++tag)
    futures.push_back(pool.submit(hold(tag, log, gate)));
  // Each node runs one job and holds the rest, to its capacity.
  REQUIRE(eventually([&] {
    return pool.stats().in_flight == jobs_before && lines_in(log) == 2;
  }));
  auto held = pool.nodes().at(0).held;
  REQUIRE(held == node_capacity);
  auto stopped_at = std::chrono::steady_clock::now();
  // Stopped for certain before the gate opens: otherwise, under load, it
  // could finish jobs and take the next one after kill() returned.
  REQUIRE(freeze(frozen.pid()));
  // The healthy node finishes its jobs and serves a new one while the
  // frozen one is not yet noticed.
  touch(gate);
  auto served = pool.submit(square(7));
  CHECK(served.get() == 49);
  auto served_in = std::chrono::steady_clock::now() - stopped_at;
  CHECK_MESSAGE(pool.stats().workers_lost == 0,
                "the other node served only after the frozen one was noticed");
  size_t values = 0;
  size_t lost = 0;
  for (auto& f : futures) {
    auto res = f.get_result();
    if (res) {
      ++values;
      CHECK(*res == healthy.pid());
    } else {
      ++lost;
      CHECK(weave::is(res.error(), weave::errc::worker_lost));
    }
  }
  auto answered_in = std::chrono::steady_clock::now() - stopped_at;
  MESSAGE("the frozen worker's " << lost << " jobs answered "
          << std::chrono::duration_cast<std::chrono::milliseconds>(
               answered_in)
               .count()
          << " ms after SIGSTOP; the other node served a job after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(served_in)
               .count()
          << " ms");
  CHECK(lost == held);
  CHECK(values == jobs_before - held);
  // Noticed by the heartbeat, and in time. Not before the timeout, less
  // the time since its last message: one interval if its heartbeats kept
  // time, more when they lagged on a busy machine; half the timeout still
  // tells a heartbeat's verdict from a loss noticed at once.
  CHECK(answered_in >= default_connection_timeout / 2);
  CHECK(answered_in
        < default_heartbeat + default_connection_timeout + detect_margin);
  auto st = pool.stats();
  CHECK(st.workers_lost == 1);
  CHECK(st.lost == held);
  CHECK(st.workers == 1);
  CHECK(pool.submit(square(3)).get() == 9);
  // A stopped process ignores SIGTERM: kill it for the teardown.
  frozen.stop(SIGKILL);
}
