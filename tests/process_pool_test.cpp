// process_pool: registered jobs run alike on a thread pool and on worker
// processes; a crash costs one job and the pool keeps its size; job tables
// that do not match are refused at connect, naming the job; bad input gets
// a clear weave error.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <string>

#include "caf/all.hpp"
#include "runtime/process_pool.hpp"
#include "runtime/weave.hpp"
#include "tests/process_pool_jobs.hpp"
#include "tests/process_pool_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::test;

// Declared here only: the worker program does not implement it.
WEAVE_JOB(parent_only, int(int x));
WEAVE_JOB_IMPL(parent_only, [](int x) { return x + 1; });

namespace {

/// Runs one registered job from an actor through `offload` with a timeout,
/// returning "value:<n>" or the rendered error.
template <class Pool, class Call>
std::string offload_from_actor(weave::runtime& rt, Pool& pool, Call call) {
  caf::scoped_actor self{rt.system()};
  std::string out = "<none>";
  weave::offload(self, pool, std::move(call), 10s)
    .receive([&](int v) { out = "value:" + std::to_string(v); },
             [&](caf::error& err) { out = weave::render(err); });
  return out;
}

/// The same user code, whichever pool it is given.
template <class Pool>
void same_code(weave::runtime& rt, Pool& pool) {
  CHECK(pool.submit(square(7)).get() == 49);
  CHECK(offload_from_actor(rt, pool, square(12)) == "value:144");
  auto failed = pool.submit(fail_with("disk on fire"));
  auto err = error_of(failed);
  CHECK(weave::is(err, weave::errc::job_failed));
  CHECK(weave::render(err).find("disk on fire") != std::string::npos);
  // After a failure, the pool still runs jobs.
  CHECK(offload_from_actor(rt, pool, square(-3)) == "value:9");
}

/// What starting a pool of a refused worker program left.
struct refusal {
  weave::errc code{};
  std::string what;
  /// This process's children right after the constructor threw (the
  /// runtime still up): the refused worker must be stopped and reaped.
  std::vector<int> children;
};

/// Starts a one-worker pool of `program`, which the pool must refuse.
refusal start_refused(const char* program) {
  weave::runtime rt{pool_config()};
  auto opts = pool_options(1);
  opts.program = program;
  refusal result;
  try {
    weave::process_pool pool{rt, opts};
  } catch (const weave::exception& e) {
    result.code = e.code();
    result.what = e.what();
  }
  result.children = child_pids();
  return result;
}

} // namespace

TEST_CASE("the same registered job code runs on a thread pool and on a "
          "process pool") {
  weave::runtime rt{pool_config()};
  SUBCASE("thread pool") {
    weave::blocking_pool pool{rt, 2, "threads"};
    same_code(rt, pool);
  }
  SUBCASE("process pool") {
    weave::process_pool pool{rt, pool_options(2)};
    same_code(rt, pool);
    // It really ran elsewhere.
    auto pid = pool.submit(whoami()).get();
    CHECK(pid != ::getpid());
    auto pids = pool.worker_pids();
    CHECK(std::find(pids.begin(), pids.end(), pid) != pids.end());
  }
}

TEST_CASE("a job that crashes its worker costs that job only; the pool keeps "
          "its size and runs the next job") {
  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, pool_options(1)};
  for (int kind : {crash_segfault, crash_abort, crash_exit}) {
    CAPTURE(kind);
    auto before = pool.submit(whoami()).get();
    auto crashed = pool.submit(crash(kind));
    auto err = error_of(crashed);
    CHECK(weave::is(err, weave::errc::worker_lost));
    CHECK(weave::maybe_executed(err));
    // The next job runs, on a replacement worker.
    auto after = pool.submit(whoami()).get();
    CHECK(after != before);
    CHECK(pool.size() == 1);
    CHECK(pool.stats().workers == 1);
  }
  auto st = pool.stats();
  CHECK(st.lost == 3);
  CHECK(st.workers_lost == 3);
}

TEST_CASE("a worker program of another weave version (no pool protocol "
          "line) is refused at connect, naming the protocol") {
  auto [code, what, children] = start_refused(old_worker_program);
  CHECK(code == weave::errc::registry_mismatch);
  CHECK(what.find("protocol") != std::string::npos);
  CHECK(what.find("another weave version") != std::string::npos);
  CHECK(children.empty());
}

TEST_CASE("a worker whose job table does not match is refused at connect, "
          "naming the job") {
  auto [code, what, children] = start_refused(bad_worker_program);
  CHECK(code == weave::errc::registry_mismatch);
  CHECK(what.find("'square'") != std::string::npos);
  CHECK(what.find("int (int)") != std::string::npos);
  CHECK(what.find("long (long)") != std::string::npos);
  // The refused worker was stopped and reaped.
  CHECK(children.empty());
}

TEST_CASE("a job the worker program does not implement fails at submit, "
          "naming it") {
  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, pool_options(1)};
  auto f = pool.submit(parent_only(1));
  auto err = error_of(f);
  CHECK(weave::is(err, weave::errc::registry_mismatch));
  CHECK(weave::render(err).find("'parent_only'") != std::string::npos);
  // The same job runs on a thread pool of this process.
  CHECK(rt.default_pool().submit(parent_only(1)).get() == 2);
}

TEST_CASE("a job that no worker started within its timeout never runs") {
  weave::runtime rt{pool_config()};
  auto opts = pool_options(1);
  opts.capacity = 1;
  weave::process_pool pool{rt, opts};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  auto gate = dir + "/gate";
  auto busy = pool.submit(hold(1, log, gate));
  REQUIRE(eventually([&] { return lines_in(log) == 1; }));
  auto late = pool.submit(hold(2, log, std::string{}), 50ms);
  CHECK(weave::is(error_of(late), weave::errc::timeout));
  touch(gate);
  CHECK(busy.get() > 0);
  // A job queued after it runs: the late one was skipped, not lost.
  CHECK(pool.submit(hold(3, log, std::string{})).get() > 0);
  auto seen = executions(log);
  CHECK(seen.count(2) == 0);
  CHECK(seen[3] == 1);
}

TEST_CASE("bad input to a process pool gets a clear weave error") {
  weave::runtime rt{pool_config()};
  auto code_of = [&](weave::process_pool_options opts) {
    try {
      weave::process_pool pool{rt, opts};
    } catch (const weave::exception& e) {
      return std::make_pair(e.code(), std::string{e.what()});
    }
    return std::make_pair(weave::errc{}, std::string{"accepted"});
  };
  auto zero = code_of(pool_options(0));
  CHECK(zero.first == weave::errc::invalid_argument);
  CHECK(zero.second.find("workers") != std::string::npos);
  auto missing = pool_options(1);
  missing.program = "tests/no_such_worker";
  auto res = code_of(missing);
  CHECK(res.first == weave::errc::invalid_argument);
  CHECK(res.second.find("no_such_worker") != std::string::npos);
  auto small = pool_options(1);
  small.threads_per_worker = 4;
  small.capacity = 2;
  CHECK(code_of(small).first == weave::errc::invalid_argument);
  weave::process_pool pool{rt, pool_options(1)};
  auto neg = pool.submit(square(2), -1ms);
  CHECK(weave::is(error_of(neg), weave::errc::invalid_argument));
  CHECK(offload_from_actor(rt, pool, square(2)) == "value:4");
  caf::scoped_actor self{rt.system()};
  std::string out;
  weave::offload(self, pool, square(2), -5ms)
    .receive([&](int) { out = "value"; },
             [&](caf::error& err) { out = weave::render(err); });
  CHECK(out.find("invalid_argument") != std::string::npos);
}

TEST_CASE("a process pool needs the middleman, and says so") {
  weave::runtime rt;
  std::string what;
  try {
    weave::process_pool pool{rt, pool_options(1)};
  } catch (const weave::exception& e) {
    what = e.what();
  }
  CHECK(what.find("enable_process_pools") != std::string::npos);
}
