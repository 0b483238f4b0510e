// Stopping running pool jobs: a job that takes a `stop_token` is asked to
// stop by `cancel()`, by its deadline and by a shutdown, with the matching
// cause; one that ignores the request past `weave.cancel-grace` is answered
// anyway and its worker quarantined (replaced, up to
// `weave.max-quarantined`), and the quarantined worker ends when its job
// finally returns. Jobs without a token behave as before.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/stop_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::errc;
using weave::test::config;
using weave::test::error_of;
using weave::test::eventually;
using weave::test::latch;
using weave::test::long_grace;
using weave::test::short_grace;
using weave::test::token_job;

TEST_CASE("cancel() reaches a running job that takes a token: it sees "
          "cause cancelled and its future completes with cancelled") {
  weave::runtime rt{config(long_grace)};
  weave::blocking_pool pool{rt, 1, "stop"};
  token_job tj;
  auto f = pool.submit(tj.honouring());
  REQUIRE(tj.entered->wait());
  CHECK(f.cancel());
  REQUIRE(f.wait_for(weave::test::patience));
  CHECK(error_of(f) == errc::cancelled);
  CHECK(tj.seen->load() == static_cast<int>(errc::cancelled));
  CHECK(tj.returned->load() == 1);
  CHECK(pool.stats().quarantined_total == 0);
  CHECK_FALSE(f.cancel()); // ended
}

TEST_CASE("a running job without a token cannot be cancelled: cancel() is "
          "false and the job's value arrives") {
  weave::runtime rt{config(long_grace)};
  weave::blocking_pool pool{rt, 1, "plain"};
  auto entered = std::make_shared<latch>(1);
  auto release = std::make_shared<latch>(1);
  auto f = pool.submit([entered, release] {
    entered->count_down();
    release->wait();
    return 5;
  });
  REQUIRE(entered->wait());
  CHECK_FALSE(f.cancel());
  release->count_down();
  CHECK(f.get() == 5);
}

TEST_CASE("a timed submit of a token job that is still running at its "
          "deadline is asked to stop with cause timeout") {
  weave::runtime rt{config(long_grace)};
  weave::blocking_pool pool{rt, 1, "deadline"};
  // The worker started and idle first: the timed job must be running, not
  // waiting for its worker to start, when its deadline passes.
  pool.submit([] {}).get();
  token_job tj;
  auto start = std::chrono::steady_clock::now();
  auto f = pool.submit(tj.honouring(), weave::test::start_window);
  REQUIRE(f.wait_for(weave::test::patience));
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(error_of(f) == errc::timeout);
  REQUIRE_MESSAGE(tj.entered->ready(), "the job started after its deadline");
  CHECK(tj.seen->load() == static_cast<int>(errc::timeout));
  CHECK(took >= weave::test::start_window);
  CHECK(pool.stats().quarantined_total == 0);
}

TEST_CASE("a job that ignores its stop is answered after the grace period, "
          "its worker is quarantined and replaced, and it ends when the job "
          "returns") {
  weave::runtime rt{config(short_grace)};
  weave::blocking_pool pool{rt, 1, "stuck"};
  token_job tj;
  auto f = pool.submit(tj.ignoring());
  REQUIRE(tj.entered->wait());
  auto asked = std::chrono::steady_clock::now();
  CHECK(f.cancel());
  REQUIRE(f.wait_for(weave::test::patience));
  CHECK(std::chrono::steady_clock::now() - asked >= short_grace);
  CHECK(error_of(f) == errc::cancelled);
  CHECK(tj.returned->load() == 0); // still stuck
  auto s = pool.stats();
  CHECK(s.quarantined == 1);
  CHECK(s.quarantined_total == 1);
  // The pool of one keeps its size: a new job runs while the old one is
  // stuck.
  auto g = pool.submit([] { return 11; });
  CHECK(g.get() == 11);
  // The stuck job returns: its result is dropped and the quarantined worker
  // ends.
  tj.release->count_down();
  CHECK(eventually([&] { return pool.stats().quarantined == 0; }));
  CHECK(tj.returned->load() == 1);
  CHECK(tj.seen->load() == static_cast<int>(errc::cancelled));
  CHECK(pool.stats().quarantined_total == 1);
  CHECK(pool.stats().workers <= 1);
  auto h = pool.submit([] { return 12; });
  CHECK(h.get() == 12);
}

TEST_CASE("with max-quarantined reached, a quarantined worker is not "
          "replaced until one ends; the queued job then runs") {
  weave::runtime rt{config(short_grace, 1)};
  weave::blocking_pool pool{rt, 1, "capped"};
  token_job first;
  token_job second;
  auto f1 = pool.submit(first.ignoring());
  REQUIRE(first.entered->wait());
  CHECK(f1.cancel());
  CHECK(error_of(f1) == errc::cancelled);
  // Replaced: the second stuck job runs on the replacement.
  auto f2 = pool.submit(second.ignoring());
  REQUIRE(second.entered->wait());
  CHECK(f2.cancel());
  CHECK(error_of(f2) == errc::cancelled);
  CHECK(pool.stats().quarantined == 2);
  // Two quarantined, the cap is one: no worker for this job yet.
  auto ran = std::make_shared<std::atomic<bool>>(false);
  auto f3 = pool.submit([ran] {
    ran->store(true);
    return 3;
  });
  CHECK_FALSE(f3.wait_for(100ms));
  CHECK_FALSE(ran->load());
  first.release->count_down();
  CHECK(f3.get() == 3);
  second.release->count_down();
  CHECK(eventually([&] { return pool.stats().quarantined == 0; }));
  CHECK(pool.stats().quarantined_total == 2);
}

TEST_CASE("shutdown asks running token jobs to stop with cause shut_down "
          "and finishes long before its deadline") {
  token_job tj;
  weave::future<int> f;
  auto start = std::chrono::steady_clock::now();
  {
    auto cfg = config(long_grace);
    cfg.set("weave.shutdown-deadline", caf::timespan{30s});
    weave::runtime rt{cfg};
    f = rt.default_pool().submit(tj.honouring());
    REQUIRE(tj.entered->wait());
    start = std::chrono::steady_clock::now();
  }
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  CHECK(tj.seen->load() == static_cast<int>(errc::shut_down));
  REQUIRE(f.wait_for(weave::test::patience));
  CHECK(error_of(f) == errc::shut_down);
}

TEST_CASE("the shutdown report counts quarantined workers") {
  token_job tj;
  weave::shutdown_report report;
  {
    auto cfg = config(short_grace);
    cfg.set("weave.shutdown-deadline", caf::timespan{200ms});
    weave::runtime rt{cfg};
    weave::blocking_pool pool{rt, 1, "reported"};
    auto f = pool.submit(tj.ignoring());
    REQUIRE(tj.entered->wait());
    CHECK(f.cancel());
    CHECK(error_of(f) == errc::cancelled);
    pool.shutdown(0s);
    report = rt.shutdown();
  }
  tj.release->count_down();
  CHECK(report.workers_quarantined == 1);
  CHECK(report.to_string().find("1 workers quarantined") != std::string::npos);
}

TEST_CASE("offload: cancel() on the handle stops a running token job; a "
          "timeout asks it to stop with cause timeout") {
  weave::runtime rt{config(long_grace)};
  // Two workers started and idle first: the timed job must be running, not
  // waiting for a worker to start, when its deadline passes (on a loaded
  // machine under ASan, starting a worker took longer than the deadline).
  {
    latch both{2};
    auto a = rt.default_pool().submit([&both] { both.count_down(); both.wait(); });
    auto b = rt.default_pool().submit([&both] { both.count_down(); both.wait(); });
    a.get();
    b.get();
  }
  weave::test::failures fails;
  token_job cancelled_job;
  token_job timed_job;
  auto codes = std::make_shared<std::vector<uint8_t>>();
  auto done = std::make_shared<latch>(2);
  auto actor = rt.system().spawn([&fails, codes, done, cancelled_job,
                                  timed_job](caf::event_based_actor* self) {
    auto h = weave::offload(self, cancelled_job.honouring());
    h.then([&fails](int) { fails.add("cancelled job delivered a value"); },
           [codes, done](caf::error& err) {
             codes->push_back(err.code());
             done->count_down();
           });
    weave::offload(self, timed_job.honouring(), 200ms)
      .then([&fails](int) { fails.add("timed job delivered a value"); },
            [codes, done](caf::error& err) {
              codes->push_back(err.code());
              done->count_down();
            });
    // Cancelled from a later message, once the job runs.
    return caf::behavior{[h, &fails](caf::atom_value) mutable {
      fails.check(h.cancel(), "cancel() of a running token job was false");
    }};
  });
  REQUIRE(cancelled_job.entered->wait());
  caf::anon_send(actor, caf::atom("cancel"));
  REQUIRE(done->wait());
  CHECK(fails.messages() == "");
  // Handlers ran on the actor, in order of arrival; both are errors.
  REQUIRE(codes->size() == 2);
  for (auto c : *codes)
    CHECK((c == static_cast<uint8_t>(errc::cancelled)
           || c == static_cast<uint8_t>(errc::timeout)));
  CHECK(cancelled_job.seen->load() == static_cast<int>(errc::cancelled));
  CHECK(eventually([&] { return timed_job.returned->load() == 1; }));
  CHECK(timed_job.seen->load() == static_cast<int>(errc::timeout));
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
}

TEST_CASE("cancel() racing the end of a token job: every future completes "
          "exactly once, with the value or cancelled") {
  weave::runtime rt{config(long_grace)};
  weave::blocking_pool pool{rt, 4, "race"};
  constexpr int rounds = 2000;
  std::vector<weave::future<int>> fs;
  fs.reserve(rounds);
  for (int i = 0; i < rounds; ++i) {
    fs.push_back(pool.submit([i](weave::stop_token st) {
      if (i % 3 == 0)
        weave::sleep_for(st, 50us);
      return i;
    }));
    if (i % 2 == 0)
      fs.back().cancel();
  }
  int values = 0;
  int cancelled = 0;
  for (int i = 0; i < rounds; ++i) {
    auto r = fs[static_cast<size_t>(i)].get_result();
    if (r) {
      CHECK(*r == i);
      ++values;
    } else {
      CHECK(r.error().code() == static_cast<uint8_t>(errc::cancelled));
      ++cancelled;
    }
  }
  CHECK(values + cancelled == rounds);
  CHECK(values >= rounds / 2); // odd ones are never cancelled
  CHECK(pool.stats().quarantined_total == 0);
}

TEST_CASE("cancel-grace and max-quarantined are checked like every weave "
          "option") {
  weave::runtime_config cfg;
  cfg.set("weave.cancel-grace", caf::timespan{-1ms});
  auto err = cfg.validate();
  REQUIRE(err);
  CHECK(caf::to_string(err).find("cancel-grace") != std::string::npos);
  weave::runtime_config cfg2;
  cfg2.set("weave.max-quarantined", size_t{100000}); // above 4096
  auto err2 = cfg2.validate();
  REQUIRE(err2);
  CHECK(caf::to_string(err2).find("max-quarantined") != std::string::npos);
}

TEST_CASE("spawn_blocker: a token blocker is stopped by cancel() and by the "
          "runtime's shutdown, with the matching cause") {
  token_job by_cancel;
  token_job by_shutdown;
  weave::future<int> f2;
  {
    auto cfg = config(long_grace);
    cfg.set("weave.shutdown-deadline", caf::timespan{30s});
    weave::runtime rt{cfg};
    auto b1 = weave::spawn_blocker(rt, by_cancel.honouring(), "b1");
    auto b2 = weave::spawn_blocker(rt, by_shutdown.honouring(), "b2");
    f2 = b2.result();
    REQUIRE(by_cancel.entered->wait());
    auto f1 = b1.result();
    CHECK(f1.cancel());
    CHECK(error_of(f1) == errc::cancelled);
    CHECK(by_cancel.seen->load() == static_cast<int>(errc::cancelled));
    REQUIRE(by_shutdown.entered->wait());
    auto report = rt.shutdown();
    CHECK(report.threads_abandoned == 0);
  }
  CHECK(by_shutdown.seen->load() == static_cast<int>(errc::shut_down));
  CHECK(error_of(f2) == errc::shut_down);
}

TEST_CASE("the runtime's shutdown answers a token job that ignores its stop "
          "after the grace period, not at the shutdown deadline") {
  token_job tj;
  weave::future<int> f;
  weave::shutdown_report report;
  auto heard = std::make_shared<latch>(1);
  std::thread releaser;
  {
    auto cfg = config(short_grace);
    cfg.set("weave.shutdown-deadline", caf::timespan{30s});
    weave::runtime rt{cfg};
    f = rt.default_pool().submit(tj.ignoring());
    REQUIRE(tj.entered->wait());
    // Releases the stuck job once its caller was answered: the shutdown
    // then need not wait for the deadline.
    releaser = std::thread{[&f, heard, release = tj.release] {
      f.wait();
      heard->count_down();
      release->count_down();
    }};
    auto start = std::chrono::steady_clock::now();
    report = rt.shutdown();
    CHECK(std::chrono::steady_clock::now() - start < 20s);
  }
  releaser.join();
  CHECK(heard->ready());
  CHECK(error_of(f) == errc::shut_down);
  CHECK(report.jobs_abandoned == 1);
  CHECK(tj.seen->load() == static_cast<int>(errc::shut_down));
}
