// blocking_pool on threads that must never block (a scheduler thread running
// an event-based actor's handler, an event loop's own thread): destroying a
// pool there stops it without waiting for its running jobs, and a shutdown
// that would wait is refused with `would_deadlock` instead of blocking (as is
// one inside a job of the same pool, which would wait for itself).
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <string>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::latch;

namespace {

/// The pools' shutdown deadline: a destructor that waited for the running
/// job would be caught waiting (the test releases the job only after the
/// answer came, or `patience` passed without one).
constexpr auto long_deadline = std::chrono::seconds{30};

weave::runtime_config slow_shutdown_config() {
  weave::runtime_config cfg;
  cfg.set("weave.shutdown-deadline", caf::timespan{long_deadline});
  return cfg;
}

/// A job that signals it runs, then holds its worker until released.
struct held_job {
  std::shared_ptr<latch> entered = std::make_shared<latch>(1);
  std::shared_ptr<latch> release = std::make_shared<latch>(1);

  auto fn() const {
    return [entered = entered, release = release] {
      entered->count_down();
      release->wait(std::chrono::hours{1});
      return 7;
    };
  }
};

/// Sends `1` to a fresh event-based actor whose handler runs `body()` and
/// answers with its string; "<no answer>" if none came within `patience`.
template <class Body>
std::string ask_handler(weave::runtime& rt, Body body) {
  auto actor = rt.system().spawn([body]() -> caf::behavior {
    return {[body](int) -> std::string { return body(); }};
  });
  caf::scoped_actor test{rt.system()};
  std::string answer = "<no answer>";
  test->request(actor, caf::infinite, 1)
    .receive([&](std::string& s) { answer = std::move(s); },
             [&](caf::error& e) { answer = "error: " + weave::render(e); });
  return answer;
}

} // namespace

TEST_CASE("destroying a pool inside an event-based actor's handler does not "
          "wait for its running job") {
  weave::runtime rt{slow_shutdown_config()};
  auto pool = std::make_unique<weave::blocking_pool>(rt, 1, "dropped");
  held_job held;
  auto running = pool->submit(held.fn());
  REQUIRE(held.entered->wait());
  auto queued = pool->submit([] { return 8; });
  auto answered = std::make_shared<latch>(1);
  // The handler reports back by message; the request below is bounded by a
  // watcher that releases the job after `patience` (so a destructor that
  // waited for it ends, and the test fails instead of hanging).
  std::thread watcher{[answered, release = held.release] {
    answered->wait(weave::test::patience);
    release->count_down();
  }};
  auto answer = ask_handler(rt, [&pool, &held] {
    std::string out = weave::this_thread_must_not_block() ? "must-not-block"
                                                          : "may-block";
    pool.reset();
    out += held.release->ready() ? " after the job was released"
                                 : " while the job still ran";
    return out;
  });
  answered->count_down();
  watcher.join();
  CHECK(answer == "must-not-block while the job still ran");
  CHECK(pool == nullptr);
  // Queued work is answered, running work finishes on its own.
  REQUIRE(queued.wait_for(weave::test::patience));
  auto res = queued.get_result();
  REQUIRE_FALSE(res);
  CHECK(weave::is(res.error(), weave::errc::shut_down));
  REQUIRE(running.wait_for(weave::test::patience));
  CHECK(running.get() == 7);
  auto report = rt.shutdown(weave::test::patience);
  CHECK(report.jobs_abandoned == 0u);
  CHECK(report.threads_abandoned == 0u);
}

TEST_CASE("destroying a pool inside a loop's function does not wait for its "
          "running job") {
  weave::runtime rt{slow_shutdown_config()};
  auto pool = std::make_unique<weave::blocking_pool>(rt, 1, "looped");
  held_job held;
  auto running = pool->submit(held.fn());
  REQUIRE(held.entered->wait());
  weave::loop lp{rt, "destroyer"};
  auto done = lp.submit([&pool, &held] {
    pool.reset();
    return !held.release->ready();
  });
  auto in_time = done.wait_for(weave::test::patience);
  held.release->count_down();
  REQUIRE(in_time);
  CHECK(done.get()); // returned while the job still ran
  REQUIRE(running.wait_for(weave::test::patience));
  CHECK(running.get() == 7);
}

TEST_CASE("a pool shutdown that would wait is refused on a scheduler thread; "
          "one with a zero deadline abandons at once") {
  weave::runtime rt{slow_shutdown_config()};
  weave::blocking_pool pool{rt, 1, "refusing"};
  held_job held;
  auto running = pool.submit(held.fn());
  REQUIRE(held.entered->wait());
  auto answer = ask_handler(rt, [&pool] {
    std::string out;
    try {
      pool.shutdown(1s);
      out = "waited;";
    } catch (const weave::exception& e) {
      out = e.code() == weave::errc::would_deadlock ? "refused;" : "other;";
    }
    // Refused before it did anything: the pool still takes work.
    out += pool.submit([] { return 1; }).done() ? " closed;" : " open;";
    auto report = pool.shutdown(0s);
    out += " abandoned " + std::to_string(report.jobs_abandoned);
    return out;
  });
  held.release->count_down();
  CHECK(answer == "refused; open; abandoned 1");
  REQUIRE(running.wait_for(weave::test::patience));
  auto res = running.get_result();
  REQUIRE_FALSE(res);
  CHECK(weave::is(res.error(), weave::errc::shut_down));
}

TEST_CASE("a pool shutdown with a deadline inside one of the pool's own jobs "
          "is refused instead of waiting for itself") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 2, "selfstop"};
  auto out = pool.submit([&pool]() -> std::string {
    try {
      pool.shutdown(2s);
      return "waited";
    } catch (const weave::exception& e) {
      return e.code() == weave::errc::would_deadlock ? "refused" : "other";
    }
  });
  REQUIRE(out.wait_for(weave::test::patience));
  auto res = out.get_result();
  REQUIRE(res);
  CHECK(*res == "refused");
  // Refused before it did anything: the pool still runs jobs.
  auto after = pool.submit([] { return 1; });
  REQUIRE(after.wait_for(weave::test::patience));
  CHECK(after.get() == 1);
}
