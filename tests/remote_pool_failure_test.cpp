// remote_pool under failure: a remote worker killed with kill -9 while it
// holds jobs answers every one of them at once, marked not started / maybe
// executed; idempotent ones are retried once on the other worker and
// complete exactly once; the pool reconnects when the worker is back;
// shutdown answers what the workers still hold.
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

/// Jobs in flight across the two workers when one is killed.
constexpr size_t jobs_in_flight = 100;

/// How long after the kill every job the victim held must be answered.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/// As in process_pool_failure_test: a sanitized worker's exit (its shadow
/// memory torn down before its sockets close) and every message are slower.
/// Still well below the heartbeat's detection of a silent worker (500 ms +
/// 5 s), which this bound tells apart.
constexpr auto answer_bound = 3s;
#else
constexpr auto answer_bound = 1s;
#endif

constexpr size_t worker_threads = 2;

bool is_idempotent(uint64_t tag) {
  return tag % 3 == 0;
}

} // namespace

TEST_CASE("kill -9 of a remote worker holding jobs answers each at once, "
          "marked, and completes each idempotent one exactly once") {
  weave::runtime rt{remote_config()};
  std::vector<std::string> flags{
    "--weave-worker-threads=" + std::to_string(worker_threads),
    "--weave-worker-capacity=" + std::to_string(jobs_in_flight)};
  worker_process victim{flags};
  worker_process survivor{flags};
  REQUIRE_MESSAGE(victim.port() != 0, victim.line());
  REQUIRE_MESSAGE(survivor.port() != 0, survivor.line());
  weave::remote_pool_options opts;
  opts.workers = {victim.address(), survivor.address()};
  opts.reconnect_min = 50ms;
  weave::remote_pool pool{rt, opts};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto gate = dir + "/gate";
  std::vector<weave::future<int32_t>> futures;
  for (uint64_t tag = 0; tag < jobs_in_flight; ++tag)
    futures.push_back(is_idempotent(tag)
                        ? pool.submit(hold_idempotent(tag, log, gate))
                        : pool.submit(hold(tag, log, gate)));
  // Every job is on a worker; each worker's threads run its first ones.
  REQUIRE(eventually([&] {
    return pool.stats().in_flight == jobs_in_flight
           && lines_in(log) == 2 * worker_threads;
  }));
  auto nodes = pool.nodes();
  auto held = nodes[0].held;
  CHECK(held > 0);
  CHECK(held + nodes[1].held == jobs_in_flight);
  CHECK(held <= nodes[0].capacity);
  auto killed_at = std::chrono::steady_clock::now();
  victim.stop(SIGKILL);
  // Each job it held is answered (worker_lost) or requeued (idempotent).
  REQUIRE(eventually([&] {
    auto st = pool.stats();
    return st.lost + st.retried == held;
  }));
  auto answered_in = std::chrono::steady_clock::now() - killed_at;
  MESSAGE("the " << held << " jobs of the killed worker were answered "
                 << std::chrono::duration_cast<std::chrono::microseconds>(
                      answered_in)
                      .count()
                 << " us after the kill");
  CHECK(answered_in < answer_bound);
  auto after_kill = pool.stats();
  CHECK(after_kill.workers_lost == 1);
  CHECK(after_kill.workers == 1);
  CHECK_FALSE(pool.nodes()[0].connected);
  CHECK(pool.nodes()[0].last_error.find("lost") != std::string::npos);
  touch(gate);
  size_t values = 0;
  size_t lost = 0;
  size_t maybe = 0;
  std::vector<uint64_t> not_started;
  for (uint64_t tag = 0; tag < jobs_in_flight; ++tag) {
    auto res = futures[tag].get_result();
    if (res) {
      ++values;
      CHECK(*res == survivor.pid());
      continue;
    }
    CHECK_FALSE(is_idempotent(tag)); // retried ones always complete
    CHECK(weave::is(res.error(), weave::errc::worker_lost));
    ++lost;
    if (weave::maybe_executed(res.error()))
      ++maybe;
    else
      not_started.push_back(tag);
  }
  CHECK(values + lost == jobs_in_flight);
  CHECK(lost == after_kill.lost);
  // At most its threads plus one claim ahead each may have started.
  CHECK(maybe <= 2 * worker_threads);
  auto seen = executions(log);
  for (auto tag : not_started)
    CHECK_MESSAGE(seen.count(tag) == 0, "a job marked not started ran: "
                                          << tag);
  for (uint64_t tag = 0; tag < jobs_in_flight; ++tag) {
    if (is_idempotent(tag))
      CHECK((seen[tag] >= 1 && seen[tag] <= 2));
    else
      CHECK(seen[tag] <= 1);
  }
}

TEST_CASE("a remote pool's shutdown answers the jobs its workers hold and "
          "queued ones, and the workers drop them") {
  weave::runtime rt{remote_config()};
  worker_process a;
  REQUIRE_MESSAGE(a.port() != 0, a.line());
  auto dir = scratch_dir();
  auto log = dir + "/log";
  weave::future<int32_t> running;
  weave::future<int32_t> queued;
  {
    weave::remote_pool_options opts;
    opts.workers = {a.address()};
    opts.capacity = 1;
    weave::remote_pool pool{rt, opts};
    running = pool.submit(hold(1, log, dir + "/never"));
    queued = pool.submit(hold(2, log, std::string{}));
    REQUIRE(eventually([&] { return lines_in(log) == 1; }));
    auto report = pool.shutdown(100ms);
    CHECK(report.jobs_cancelled == 1);
    CHECK(report.jobs_abandoned == 1);
    CHECK(pool.shutdown(0ms).jobs_abandoned == 0);
    auto late = pool.submit(square(1));
    CHECK(weave::is(error_of(late), weave::errc::shut_down));
  }
  CHECK(weave::is(error_of(running), weave::errc::shut_down));
  CHECK(weave::is(error_of(queued), weave::errc::shut_down));
  // The worker serves the next pool.
  touch(dir + "/never");
  weave::remote_pool again{rt, {{a.address()}}};
  CHECK(again.submit(square(6)).get() == 36);
  CHECK(executions(log).count(2) == 0);
}
