// process_pool liveness: a frozen worker (SIGSTOP) is noticed by the
// middleman's heartbeat, its jobs answered, the worker killed (SIGKILL),
// reaped and replaced; a worker program that keeps crashing at start is
// restarted with exponential back-off up to a cap, not in a fork loop.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/process_pool.hpp"
#include "runtime/weave.hpp"
#include "tests/process_pool_jobs.hpp"
#include "tests/process_pool_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::test;

namespace {

/// Shorter than the defaults (500 ms, 5 s) to keep the test fast, long
/// enough that a healthy worker on a busy machine is not dropped (under
/// sanitizers its heartbeats may lag by much more).
constexpr auto test_heartbeat = 200ms;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr auto test_connection_timeout = 3s;
#else
constexpr auto test_connection_timeout = 1s;
#endif

/// Beyond heartbeat + timeout: the tick's lag, the DOWN, and the answers
/// on a busy 2-core machine under ASan.
constexpr auto detect_margin = 2s;

/// Jobs the frozen worker holds (one runs, the rest wait there).
constexpr size_t frozen_jobs = 4;

/// Restart back-off of the crash-at-start test, and restarts it watches.
constexpr auto test_backoff = 50ms;
constexpr auto test_max_backoff = 200ms;
constexpr size_t watched_restarts = 10;

/// Beyond the cap, what one restart may take (fork, exec under ASan, the
/// exit and the reap) on a busy machine. Without the cap the last watched
/// wait alone would be 50 ms * 2^9 = 25.6 s.
constexpr auto restart_slack = 3s;

/// How long the watched restarts may take in all.
constexpr auto restarts_patience = 40s;

/// Worker starts in $TEST_TMPDIR/worker_starts: CLOCK_MONOTONIC ns each.
std::vector<long long> worker_starts() {
  std::vector<long long> result;
  std::ifstream in{std::string{std::getenv("TEST_TMPDIR")} + "/"
                   + worker_start_log};
  long long pid = 0;
  long long ns = 0;
  while (in >> pid >> ns)
    result.push_back(ns);
  return result;
}

} // namespace

TEST_CASE("the heartbeat defaults are 500 ms and 5 s, set by "
          "enable_process_pools unless given") {
  CHECK(weave::default_heartbeat_interval == 500ms);
  CHECK(weave::default_connection_timeout == 5s);
  weave::runtime_config cfg;
  cfg.set("middleman.connection-timeout", caf::timespan{2s});
  weave::enable_process_pools(cfg);
  CHECK(caf::get_or(cfg, "middleman.heartbeat-interval", caf::timespan{0})
        == weave::default_heartbeat_interval);
  CHECK(caf::get_or(cfg, "middleman.connection-timeout", caf::timespan{0})
        == caf::timespan{2s});
}

TEST_CASE("a frozen worker (SIGSTOP) loses its jobs within heartbeat + "
          "connection timeout, and is killed, reaped and replaced") {
  REQUIRE(std::getenv("TEST_TMPDIR") != nullptr);
  weave::runtime_config cfg;
  cfg.set("middleman.heartbeat-interval", caf::timespan{test_heartbeat});
  cfg.set("middleman.connection-timeout",
          caf::timespan{test_connection_timeout});
  weave::enable_process_pools(cfg);
  weave::runtime rt{std::move(cfg)};
  auto opts = pool_options(1);
  opts.capacity = frozen_jobs;
  weave::process_pool pool{rt, opts};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  std::vector<weave::future<int32_t>> futures;
  for (uint64_t tag = 0; tag < frozen_jobs; ++tag)
    futures.push_back(pool.submit(hold(tag, log, dir + "/never")));
  REQUIRE(eventually([&] {
    return pool.stats().in_flight == frozen_jobs && lines_in(log) == 1;
  }));
  auto victim = pool.worker_pids().at(0);
  REQUIRE(victim > 0);
  auto stopped_at = std::chrono::steady_clock::now();
  REQUIRE(freeze(victim));
  for (auto& f : futures) {
    auto err = error_of(f);
    CHECK(weave::is(err, weave::errc::worker_lost));
  }
  auto answered_in = std::chrono::steady_clock::now() - stopped_at;
  MESSAGE("jobs of the frozen worker answered "
          << std::chrono::duration_cast<std::chrono::milliseconds>(
               answered_in)
               .count()
          << " ms after SIGSTOP (heartbeat "
          << test_heartbeat.count() << " ms, timeout "
          << std::chrono::milliseconds{test_connection_timeout}.count()
          << " ms)");
  // Noticed by the heartbeat, and in time. Not before the timeout, less
  // the time since its last message: one interval if its heartbeats kept
  // time, more when they lagged on a busy machine; half the timeout still
  // tells a heartbeat's verdict from a loss noticed at once.
  CHECK(answered_in >= test_connection_timeout / 2);
  CHECK(answered_in
        < test_heartbeat + test_connection_timeout + detect_margin);
  // SIGKILL (a stopped process ignores SIGTERM until continued), reaped.
  CHECK(eventually([&] { return !listed(victim); }));
  CHECK(eventually([&] {
    auto pids = pool.worker_pids();
    return pool.stats().workers == 1 && pids.at(0) != 0
           && pids.at(0) != victim;
  }));
  CHECK(pool.submit(square(4)).get() == 16);
  auto st = pool.stats();
  CHECK(st.workers_lost == 1);
  CHECK(st.lost == frozen_jobs);
}

TEST_CASE("a worker that keeps crashing at start is restarted with "
          "exponential back-off up to a cap, and the pool recovers") {
  REQUIRE(std::getenv("TEST_TMPDIR") != nullptr);
  CHECK(weave::process_pool::respawn_backoff == 200ms);
  CHECK(weave::process_pool::max_respawn_backoff == 5s);
  weave::runtime rt{pool_config()};
  auto opts = pool_options(1);
  opts.respawn_backoff = test_backoff;
  opts.max_respawn_backoff = test_max_backoff;
  weave::process_pool pool{rt, opts};
  auto crash = std::string{std::getenv("TEST_TMPDIR")} + "/" + crash_at_start;
  auto first = worker_starts().size();
  REQUIRE(first >= 1);
  touch(crash);
  auto victim = pool.worker_pids().at(0);
  REQUIRE(::kill(victim, SIGKILL) == 0);
  REQUIRE(eventually(
    [&] { return worker_starts().size() >= first + watched_restarts; },
    std::chrono::duration_cast<std::chrono::milliseconds>(restarts_patience)));
  std::remove(crash.c_str());
  auto starts = worker_starts();
  // starts[first] is the first restart (at once: that worker had
  // connected); each later one waited the back-off, doubled each time up
  // to the cap.
  caf::timespan wait = test_backoff;
  for (size_t k = first + 1; k < first + watched_restarts; ++k) {
    auto gap = std::chrono::nanoseconds{starts[k] - starts[k - 1]};
    CAPTURE(k - first);
    CAPTURE(std::chrono::duration_cast<std::chrono::milliseconds>(gap)
              .count());
    CHECK(gap >= wait);
    if (k + 1 == first + watched_restarts)
      CHECK(gap < test_max_backoff + restart_slack);
    wait = std::min<caf::timespan>(wait * 2, test_max_backoff);
  }
  // Once the worker program starts again, the pool is whole.
  CHECK(pool.submit(square(3)).get() == 9);
  CHECK(pool.stats().workers == 1);
}

TEST_CASE("bad respawn back-off options are refused") {
  weave::runtime rt{pool_config()};
  auto opts = pool_options(1);
  opts.respawn_backoff = 0ms;
  std::string what;
  try {
    weave::process_pool pool{rt, opts};
  } catch (const weave::exception& e) {
    what = e.what();
  }
  CHECK(what.find("respawn_backoff") != std::string::npos);
  opts.respawn_backoff = 1s;
  opts.max_respawn_backoff = 10ms;
  what.clear();
  try {
    weave::process_pool pool{rt, opts};
  } catch (const weave::exception& e) {
    what = e.what();
  }
  CHECK(what.find("max_respawn_backoff") != std::string::npos);
}
