// remote_pool: the same user code runs on a thread pool, a process pool and
// a remote pool; a worker that is down at start is reported and the pool
// works with the others (and takes it in once it is up); an application id
// mismatch is refused, naming the ids; bad input gets a clear weave error.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "caf/all.hpp"
#include "runtime/process_pool.hpp"
#include "runtime/remote_pool.hpp"
#include "runtime/weave.hpp"
#include "tests/process_pool_jobs.hpp"
#include "tests/remote_pool_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::test;

namespace {

template <class Pool, class Call>
std::string offload_from_actor(weave::runtime& rt, Pool& pool, Call call) {
  caf::scoped_actor self{rt.system()};
  std::string out = "<none>";
  weave::offload(self, pool, std::move(call), 10s)
    .receive([&](int v) { out = "value:" + std::to_string(v); },
             [&](caf::error& err) { out = weave::render(err); });
  return out;
}

/// The user code under test: written once, generic over the pool.
template <class Pool>
void same_code(weave::runtime& rt, Pool& pool) {
  CHECK(pool.submit(square(7)).get() == 49);
  CHECK(offload_from_actor(rt, pool, square(12)) == "value:144");
  auto failed = pool.submit(fail_with("disk on fire"));
  auto err = error_of(failed);
  CHECK(weave::is(err, weave::errc::job_failed));
  CHECK(weave::render(err).find("disk on fire") != std::string::npos);
  CHECK(offload_from_actor(rt, pool, square(-3)) == "value:9");
  auto neg = pool.submit(square(2), -1ms);
  CHECK(weave::is(error_of(neg), weave::errc::invalid_argument));
}

weave::remote_pool_options remote_options(std::vector<std::string> workers) {
  weave::remote_pool_options opts;
  opts.workers = std::move(workers);
  opts.connect_timeout = 5s;
  return opts;
}

} // namespace

TEST_CASE("the same user code runs against a thread pool, a process pool "
          "and a remote pool") {
  weave::runtime rt{remote_config()};
  SUBCASE("thread pool") {
    weave::blocking_pool pool{rt, 2, "threads"};
    same_code(rt, pool);
  }
  SUBCASE("process pool") {
    weave::process_pool pool{rt, pool_options(2)};
    same_code(rt, pool);
  }
  SUBCASE("remote pool") {
    worker_process a;
    worker_process b{{"--weave-worker-threads=2"}};
    REQUIRE_MESSAGE(a.port() != 0, a.line());
    REQUIRE_MESSAGE(b.port() != 0, b.line());
    weave::remote_pool pool{rt, remote_options({a.address(), b.address()})};
    same_code(rt, pool);
    CHECK(pool.submit(square, 8).get() == 64);
    // It really ran on the workers, and both are used.
    std::vector<weave::future<int32_t>> pids;
    for (int i = 0; i < 20; ++i)
      pids.push_back(pool.submit(whoami()));
    std::set<int32_t> seen;
    for (auto& f : pids)
      seen.insert(f.get());
    CHECK(seen.count(::getpid()) == 0);
    CHECK(seen.count(a.pid()) + seen.count(b.pid()) == seen.size());
    auto nodes = pool.nodes();
    REQUIRE(nodes.size() == 2);
    CHECK(nodes[0].connected);
    CHECK(nodes[0].pid == a.pid());
    CHECK(nodes[1].pid == b.pid());
    CHECK(nodes[1].capacity == 16);
    CHECK(pool.stats().workers == 2);
  }
}

TEST_CASE("a worker that is down at start is reported; the pool works with "
          "the others and takes it in once it is up") {
  weave::runtime rt{remote_config()};
  worker_process a;
  REQUIRE_MESSAGE(a.port() != 0, a.line());
  auto port = free_port();
  auto down = "127.0.0.1:" + std::to_string(port);
  silent_listener frozen;
  auto opts = remote_options({a.address(), down, frozen.address()});
  // Below CAF's heartbeat interval (500 ms): CAF 0.17.6 drops a new
  // connection that has not shaken hands at its next tick
  // (`connection_timeout`, retried at once a few times), so only a shorter
  // deadline ends the silent listener's attempt as the pool's own
  // connect_timeout. It applies to `a` too: a first attempt of `a` that
  // takes longer is retried with back-off, and the constructor waits until
  // one worker joined (or start_timeout, 10 s, passes).
  opts.connect_timeout = 300ms;
  opts.reconnect_min = 20ms;
  opts.reconnect_max = 100ms;
  auto started = std::chrono::steady_clock::now();
  weave::remote_pool pool{rt, opts};
  auto took = std::chrono::steady_clock::now() - started;
  // The constructor waited for the silent one's deadline, not forever.
  CHECK(took < 10s);
  auto nodes = pool.nodes();
  REQUIRE(nodes.size() == 3);
  // The constructor returns once one worker joined: only `a` can.
  CHECK(nodes[0].connected);
  CHECK_FALSE(nodes[1].connected);
  CHECK(nodes[1].failed_attempts >= 1);
  CHECK_MESSAGE(!nodes[1].last_error.empty(), nodes[1].last_error);
  CHECK_FALSE(nodes[2].connected);
  CHECK_MESSAGE(nodes[2].last_error.find("connect_timeout")
                  != std::string::npos,
                nodes[2].last_error);
  MESSAGE("refused: " << nodes[1].last_error);
  MESSAGE("silent: " << nodes[2].last_error);
  for (int i = 0; i < 10; ++i)
    CHECK(pool.submit(whoami()).get() == a.pid());
  // The worker comes up on the address that was down: back-off finds it.
  worker_process late{{}, worker_program, down};
  REQUIRE_MESSAGE(late.port() == port, late.line());
  REQUIRE(eventually([&] { return pool.nodes()[1].connected; }, 20000ms));
  // A job held by `a` makes the next one go to `late`.
  auto dir = scratch_dir();
  auto busy = pool.submit(hold(1, dir + "/log", dir + "/gate"));
  REQUIRE(eventually([&] { return lines_in(dir + "/log") == 1; }));
  CHECK(pool.submit(whoami()).get() == late.pid());
  touch(dir + "/gate");
  CHECK(busy.get() == a.pid());
}

TEST_CASE("no reachable worker at start is an io_error naming each "
          "address") {
  weave::runtime rt{remote_config()};
  auto down = "127.0.0.1:" + std::to_string(free_port());
  std::string what;
  weave::errc code{};
  auto opts = remote_options({down});
  opts.start_timeout = 1s;
  try {
    weave::remote_pool pool{rt, opts};
  } catch (const weave::exception& e) {
    what = e.what();
    code = e.code();
  }
  CHECK(code == weave::errc::io_error);
  CHECK_MESSAGE(what.find(down) != std::string::npos, what);
}

TEST_CASE("a worker with another application id is refused, naming the "
          "ids") {
  weave::runtime rt{remote_config("payroll")};
  worker_process other{{"--weave-app-id=imaging"}};
  REQUIRE_MESSAGE(other.port() != 0, other.line());
  std::string what;
  weave::errc code{};
  try {
    auto opts = remote_options({other.address()});
    opts.start_timeout = 1s;
    weave::remote_pool pool{rt, opts};
  } catch (const weave::exception& e) {
    what = e.what();
    code = e.code();
  }
  CHECK(code == weave::errc::io_error);
  CHECK_MESSAGE(what.find("application id") != std::string::npos, what);
  CHECK_MESSAGE(what.find("'payroll'") != std::string::npos, what);
  CHECK_MESSAGE(what.find("'imaging'") != std::string::npos, what);
  // The same worker with the same id is accepted.
  worker_process same{{"--weave-app-id=payroll"}};
  weave::remote_pool pool{rt, remote_options({same.address()})};
  CHECK(pool.submit(square(3)).get() == 9);
}

TEST_CASE("a worker whose job table does not match is refused, naming the "
          "job") {
  weave::runtime rt{remote_config()};
  worker_process bad{{}, bad_worker_program};
  REQUIRE_MESSAGE(bad.port() != 0, bad.line());
  std::string what;
  try {
    auto opts = remote_options({bad.address()});
    opts.start_timeout = 1s;
    weave::remote_pool pool{rt, opts};
  } catch (const weave::exception& e) {
    what = e.what();
  }
  CHECK_MESSAGE(what.find("'square'") != std::string::npos, what);
}

TEST_CASE("bad input to a remote pool gets a clear weave error") {
  weave::runtime rt{remote_config()};
  auto refused = [&](weave::remote_pool_options opts) {
    try {
      weave::remote_pool pool{rt, opts};
    } catch (const weave::exception& e) {
      return std::make_pair(e.code(), std::string{e.what()});
    }
    return std::make_pair(weave::errc{}, std::string{"accepted"});
  };
  auto empty = refused(remote_options({}));
  CHECK(empty.first == weave::errc::invalid_argument);
  CHECK(empty.second.find("no workers") != std::string::npos);
  for (std::string addr : {"localhost", "localhost:", ":7001", "host:0",
                           "host:70000", "host:12ab", "host:-1"}) {
    CAPTURE(addr);
    auto res = refused(remote_options({addr}));
    CHECK(res.first == weave::errc::invalid_argument);
    CHECK(res.second.find("'" + addr + "'") != std::string::npos);
  }
  auto neg = remote_options({"127.0.0.1:1"});
  neg.connect_timeout = -1s;
  CHECK(refused(neg).first == weave::errc::invalid_argument);
  auto order = remote_options({"127.0.0.1:1"});
  order.reconnect_min = 10s;
  order.reconnect_max = 1s;
  CHECK(refused(order).first == weave::errc::invalid_argument);
  weave::runtime_config cfg;
  CHECK_THROWS_AS(weave::enable_remote_pools(cfg, ""), weave::exception);
  // No middleman.
  weave::runtime plain;
  std::string what;
  try {
    weave::remote_pool pool{plain, remote_options({"127.0.0.1:1"})};
  } catch (const weave::exception& e) {
    what = e.what();
  }
  CHECK(what.find("enable_remote_pools") != std::string::npos);
  // A negative timeout from an actor.
  worker_process a;
  weave::remote_pool pool{rt, remote_options({a.address()})};
  caf::scoped_actor self{rt.system()};
  std::string out;
  weave::offload(self, pool, square(2), -5ms)
    .receive([&](int) { out = "value"; },
             [&](caf::error& err) { out = weave::render(err); });
  CHECK(out.find("invalid_argument") != std::string::npos);
  CHECK_THROWS_AS(pool.shutdown(-1ms), weave::exception);
}
