// process_pool: a job never waits behind user code on the pool's client
// thread (`<name>-io`, which runs future continuations), and a shutdown
// right after a submit lets what fits a worker run. A design that
// coalesced sends by deferring busy-time submissions to one dispatch was
// tried and dropped (docs/design.md); these cases come from the two
// hostile reviews of it, each failed on one of its versions, and guard
// the behaviour any later batching must keep.
//
// Each case blocks the client thread in a continuation to make the order
// deterministic; the last one uses timing alone (no blocking at all).
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "runtime/process_pool.hpp"
#include "runtime/weave.hpp"
#include "tests/process_pool_jobs.hpp"
#include "tests/process_pool_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::test;

namespace {

/// How long a continuation holds the client thread at most: longer than
/// a test waits (`patience`) for a job that must start meanwhile, so a job
/// that waited for the client thread cannot start within that wait.
constexpr auto hold_limit = 3 * patience;

weave::process_pool_options one_worker(size_t threads, size_t capacity) {
  auto opts = pool_options(1);
  opts.threads_per_worker = threads;
  opts.capacity = capacity;
  return opts;
}

/// Holds the pool's client thread (`<name>-io`, where future continuations
/// run) in a continuation until released or destroyed. The state is shared
/// with the continuation, so it outlives this object if need be.
class client_held {
public:
  client_held(weave::process_pool& pool, const std::string& dir,
              const std::string& log)
    : state_(std::make_shared<state>()) {
    auto job = pool.submit(hold(0, log, dir + "/gz"));
    done_ = job.then([st = state_](weave::result<int32_t>) {
      st->in.count_down();
      st->release.wait(hold_limit);
      return true;
    });
    touch(dir + "/gz");
    entered_ = state_->in.wait();
  }
  ~client_held() {
    release();
  }
  client_held(const client_held&) = delete;
  client_held& operator=(const client_held&) = delete;

  /// Whether the continuation began (and holds the thread).
  bool entered() const {
    return entered_;
  }
  void release() {
    state_->release.count_down();
  }
  /// The continuation's result, once released.
  bool finished() {
    return done_.get();
  }

private:
  struct state {
    latch in{1};
    latch release{1};
  };
  std::shared_ptr<state> state_;
  weave::future<bool> done_;
  bool entered_ = false;
};

} // namespace

TEST_CASE("a job submitted while a continuation holds the client thread "
          "starts as soon as a worker thread frees") {
  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, one_worker(2, 32)};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  // Z's continuation occupies the client thread (user code: allowed).
  client_held z{pool, dir, log};
  REQUIRE(z.entered());
  // P and Q take both threads (sent at once: idle threads).
  auto p = pool.submit(hold(1, log, dir + "/gp"));
  auto q = pool.submit(hold(2, log, dir + "/gq"));
  REQUIRE(eventually([&] { return lines_in(log) == 3; }));
  // D: both threads held, room for 30 more.
  auto d = pool.submit(hold(3, log, std::string{}));
  // P ends: the worker has an idle thread, and D (granted as sent, waiting
  // there) starts without the client thread.
  touch(dir + "/gp");
  CHECK(eventually([&] { return lines_in(log) == 4; }));
  CHECK(pool.stats().queued == 0);
  z.release();
  touch(dir + "/gq");
  CHECK(z.finished());
  CHECK(d.get() > 0);
  CHECK(p.get() > 0);
  CHECK(q.get() > 0);
}

TEST_CASE("a job a continuation submits on the client thread starts when "
          "a worker thread frees, though the continuation runs on") {
  // (From the second review: the continuation's own jobs must not wait for
  // it to return, nor for the continuations after it.)
  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, one_worker(2, 32)};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  weave::future<int32_t> p, q, d;
  bool d_started = false;
  auto z = pool.submit(hold(0, log, dir + "/gz"));
  auto zc = z.then([&](weave::result<int32_t>) {
    // On <name>-io: P and Q take both threads, then D.
    p = pool.submit(hold(1, log, dir + "/gp"));
    q = pool.submit(hold(2, log, dir + "/gq"));
    eventually([&] { return lines_in(log) == 3; });
    d = pool.submit(hold(3, log, std::string{}));
    touch(dir + "/gp"); // a thread frees: D can start
    d_started = eventually([&] { return lines_in(log) == 4; });
    return true;
  });
  touch(dir + "/gz");
  CHECK(zc.get());
  CHECK(d_started);
  touch(dir + "/gq");
  CHECK(p.get() > 0);
  CHECK(q.get() > 0);
  CHECK(d.get() > 0);
}

TEST_CASE("a job submitted while a continuation holds the client thread "
          "and the pool sees an idle thread goes out at once") {
  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, one_worker(2, 32)};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  latch q_in{1};
  latch q_release{1};
  client_held z{pool, dir, log};
  REQUIRE(z.entered()); // the client thread is busy
  auto p = pool.submit(hold(1, log, dir + "/gp"));
  auto q = pool.submit(hold(2, log, dir + "/gq"));
  auto qc = q.then([&](weave::result<int32_t>) {
    q_in.count_down();
    q_release.wait(hold_limit);
    return true;
  });
  REQUIRE(eventually([&] { return lines_in(log) == 3; }));
  // P and Q end; their results wait in the client's mailbox (it is busy).
  touch(dir + "/gp");
  touch(dir + "/gq");
  // D is submitted while another thread (the client's, in Z's
  // continuation) runs the pool's answers: it goes out at once.
  auto d = pool.submit(hold(3, log, std::string{}));
  z.release();
  // The client thread reads the results and blocks again in Q's
  // continuation.
  REQUIRE(q_in.wait());
  REQUIRE(eventually([&] { return lines_in(log) == 4; })); // D ran
  // Both worker threads are free (P, Q and D ended), whatever results
  // the blocked client thread has not read yet: E must go out at once.
  auto e = pool.submit(hold(4, log, std::string{}));
  CHECK(pool.stats().queued == 0);
  CHECK(eventually([&] { return lines_in(log) == 5; }));
  q_release.count_down();
  CHECK(z.finished());
  CHECK(qc.get());
  CHECK(e.get() > 0);
  CHECK(d.get() > 0);
}

TEST_CASE("a job submitted just before the pool shuts down, while a "
          "continuation holds the client thread, finishes: its worker has "
          "room") {
  // Shutdown: "queued jobs are answered shut_down; jobs the workers hold
  // may finish until the deadline". C fits the worker (capacity 16), so it
  // is sent at submit and held there, not queued here.
  weave::runtime rt{pool_config()};
  weave::process_pool pool{rt, one_worker(1, 16)};
  auto dir = scratch_dir();
  auto log = dir + "/log";
  client_held z{pool, dir, log};
  REQUIRE(z.entered());
  auto b = pool.submit(square(3)); // the thread is idle: at once
  auto c = pool.submit(square(4)); // the worker's thread is busy
  weave::shutdown_report report;
  latch stopping{1};
  std::thread stopper{[&] {
    stopping.count_down();
    report = pool.shutdown(10s);
  }};
  // The shutdown is asked for while the client thread is still held (its
  // results, B's and C's among them, wait for it).
  REQUIRE(stopping.wait());
  z.release();
  stopper.join();
  CHECK(z.finished());
  CHECK_FALSE(error_of(b));
  auto err = error_of(c);
  CHECK_MESSAGE(!err, weave::render(err));
  CHECK(report.jobs_cancelled == 0);
}

TEST_CASE("jobs submitted just before shutdown all finish when "
          "the worker has room (no blocking: timing only)") {
  int cancelled = 0;
  for (int round = 0; round < 3; ++round) {
    weave::runtime rt{pool_config()};
    weave::process_pool pool{rt, one_worker(1, 16)};
    std::vector<weave::future<int>> xs;
    for (int i = 0; i < 8; ++i)
      xs.push_back(pool.submit(square(i)));
    auto report = pool.shutdown(10s);
    for (auto& x : xs)
      if (error_of(x))
        ++cancelled;
    MESSAGE("round " << round << ": cancelled " << report.jobs_cancelled);
  }
  CHECK(cancelled == 0);
}
