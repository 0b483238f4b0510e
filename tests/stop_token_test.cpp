// stop_source, stop_token and stop_callback: C++20 semantics plus a cause.
// Callbacks registered after the stop run at once; every registered callback
// runs exactly once or is deregistered without running, under races from
// many threads; a destructor waits for its callback running elsewhere and
// does not deadlock on its own thread; the first requester's cause wins.
// The stop-aware waits are in stop_wait_test.cpp. Tagged tsan_clean: no
// actor runs here, so `./bazelw test --config=tsan //tests:stop_token_test`
// checks it under ThreadSanitizer.
#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/stop_token.hpp"
#include "tests/stop_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::errc;
using weave::stop_callback;
using weave::stop_source;
using weave::stop_token;
using weave::test::latch;
using weave::test::thrown_code;

namespace {

/// Threads racing registration against the stop.
constexpr int racing_threads = 8;

/// Rounds of the registration race (a fresh source each).
constexpr int race_rounds = 200;

/// Callbacks each racing thread registers per round.
constexpr int callbacks_per_thread = 16;

/// Rounds of the two-cause race.
constexpr int cause_rounds = 1000;

/// Gives a thread time to enter a destructor that must wait (creates the
/// condition "the destructor is waiting"; nothing waits for it to pass).
constexpr auto enter_delay = std::chrono::milliseconds{20};


} // namespace

TEST_CASE("a default token never stops and a fresh source can") {
  stop_token none;
  CHECK_FALSE(none.stop_requested());
  CHECK_FALSE(none.stop_possible());
  CHECK(none.cause() == errc{});
  CHECK_FALSE(none.error());
  stop_source src;
  auto tok = src.get_token();
  CHECK(src.stop_possible());
  CHECK(tok.stop_possible());
  CHECK_FALSE(tok.stop_requested());
  CHECK(tok.cause() == errc{});
  CHECK(tok == src.get_token());
  CHECK(tok != none);
  stop_source empty{weave::nostopstate};
  CHECK_FALSE(empty.stop_possible());
  CHECK_FALSE(empty.get_token().stop_possible());
  CHECK_FALSE(empty.request_stop());
  CHECK_FALSE(empty.stop_requested());
}

TEST_CASE("only the first request_stop returns true; its cause is reported") {
  stop_source src;
  auto copy = src;
  auto tok = src.get_token();
  CHECK(copy.request_stop(errc::shut_down));
  CHECK_FALSE(src.request_stop(errc::timeout));
  CHECK_FALSE(copy.request_stop());
  CHECK(tok.stop_requested());
  CHECK(src.stop_requested());
  CHECK(tok.cause() == errc::shut_down);
  CHECK(src.cause() == errc::shut_down);
  CHECK(weave::is(tok.error(), errc::shut_down));
  CHECK(weave::render(src.error()) == "weave::shut_down: stop requested");
  stop_source other;
  CHECK(other.request_stop()); // the default cause
  CHECK(other.get_token().cause() == errc::cancelled);
}

TEST_CASE("request_stop refuses an empty cause") {
  stop_source src;
  CHECK(thrown_code([&] { src.request_stop(errc{}); }) == "invalid_argument");
  CHECK_FALSE(src.stop_requested());
}

TEST_CASE("stop_possible is false once every source is gone, unless stopped") {
  stop_token tok;
  {
    stop_source src;
    auto copy = src;
    tok = src.get_token();
    { stop_source moved{std::move(copy)}; }
    CHECK(tok.stop_possible()); // `src` is still there
  }
  CHECK_FALSE(tok.stop_possible());
  CHECK_FALSE(tok.stop_requested());
  stop_token stopped;
  {
    stop_source src;
    stopped = src.get_token();
    src.request_stop(errc::timeout);
  }
  CHECK(stopped.stop_possible());
  CHECK(stopped.stop_requested());
  CHECK(stopped.cause() == errc::timeout);
  // Assigning over the last source counts as losing it.
  stop_source a;
  auto tok_a = a.get_token();
  a = stop_source{weave::nostopstate};
  CHECK_FALSE(tok_a.stop_possible());
}

TEST_CASE("a callback registered after the stop runs at once, on the "
          "registering thread") {
  stop_source src;
  src.request_stop(errc::timeout);
  auto me = std::this_thread::get_id();
  std::thread::id ran_on;
  errc seen{};
  int runs = 0;
  stop_callback cb{src.get_token(), [&] {
                     ++runs;
                     ran_on = std::this_thread::get_id();
                     seen = src.cause();
                   }};
  CHECK(runs == 1);
  CHECK(ran_on == me);
  CHECK(seen == errc::timeout);
}

TEST_CASE("callbacks run once each, on the stopping thread, and a "
          "deregistered one never runs") {
  stop_source src;
  std::atomic<int> a{0};
  std::atomic<int> b{0};
  std::thread::id ran_on;
  stop_callback cb_a{src.get_token(), [&] {
                       ++a;
                       ran_on = std::this_thread::get_id();
                     }};
  {
    stop_callback cb_b{src.get_token(), [&] { ++b; }};
  }
  std::thread::id stopper;
  std::thread t{[&] {
    stopper = std::this_thread::get_id();
    src.request_stop();
    src.request_stop();
  }};
  t.join();
  CHECK(a == 1);
  CHECK(b == 0);
  CHECK(ran_on == stopper);
}

TEST_CASE("a callback may register, deregister and request again while "
          "the stop runs") {
  stop_source src;
  auto tok = src.get_token();
  int inner_runs = 0;
  int victim_runs = 0;
  bool again = true;
  std::optional<stop_callback<std::function<void()>>> victim;
  std::optional<stop_callback<std::function<void()>>> inner;
  // Registered first, so it is not the first to run (the newest runs
  // first); either way the victim must run at most once.
  victim.emplace(tok, std::function<void()>{[&] { ++victim_runs; }});
  stop_callback first{tok, [&] {
                        again = src.request_stop(); // no deadlock, false
                        inner.emplace(tok, std::function<void()>{
                                             [&] { ++inner_runs; }});
                        victim.reset(); // deregisters (or it already ran)
                      }};
  CHECK(src.request_stop());
  CHECK_FALSE(again);
  CHECK(inner_runs == 1); // registered after the stop: ran at once
  CHECK(victim_runs <= 1);
}

TEST_CASE("a callback that destroys its own stop_callback does not "
          "deadlock") {
  stop_source src;
  std::unique_ptr<stop_callback<std::function<void()>>> self;
  std::atomic<int> runs{0};
  std::atomic<int> later{0};
  stop_callback other{src.get_token(), [&] { ++later; }};
  self = std::make_unique<stop_callback<std::function<void()>>>(
    src.get_token(), std::function<void()>{[&] {
      ++runs;
      self.reset(); // must not wait for itself; touches nothing afterwards
    }});
  std::thread t{[&] { src.request_stop(); }};
  t.join();
  CHECK(runs == 1);
  CHECK(self == nullptr);
  CHECK(later == 1);
}

TEST_CASE("the destructor waits for its callback running on another "
          "thread") {
  stop_source src;
  latch entered{1};
  latch release{1};
  std::atomic<bool> finished{false};
  auto cb = std::make_unique<stop_callback<std::function<void()>>>(
    src.get_token(), std::function<void()>{[&] {
      entered.count_down();
      release.wait();
      finished = true;
    }});
  std::thread stopper{[&] { src.request_stop(); }};
  REQUIRE(entered.wait());
  std::atomic<bool> finished_when_destroyed{false};
  latch destroyed{1};
  std::thread destroyer{[&] {
    cb.reset();
    finished_when_destroyed = finished.load();
    destroyed.count_down();
  }};
  std::this_thread::sleep_for(enter_delay); // let it block in ~stop_callback
  CHECK_FALSE(destroyed.ready());           // it must still wait
  release.count_down();
  REQUIRE(destroyed.wait());
  CHECK(finished_when_destroyed);
  destroyer.join();
  stopper.join();
}

TEST_CASE("racing registration, deregistration and request_stop from 8 "
          "threads: each callback runs exactly once or not at all") {
  struct slot {
    std::atomic<int> runs{0};
    std::atomic<bool> destroyed{false};
    std::atomic<bool> finished{false};
  };
  weave::test::failures bad;
  std::mt19937 rng{42};
  size_t total_ran = 0;
  size_t total_kept = 0;
  for (int round = 0; round < race_rounds; ++round) {
    stop_source src;
    auto tok = src.get_token();
    std::vector<slot> slots(racing_threads * callbacks_per_thread);
    latch go{1};
    latch stopped{1};
    std::vector<std::thread> threads;
    for (int t = 0; t < racing_threads; ++t) {
      threads.emplace_back([&, t] {
        go.wait();
        // Even slots: deregistered at once (racing the stop); odd slots:
        // kept until the stop returned, so they must have run.
        std::vector<std::unique_ptr<stop_callback<std::function<void()>>>>
          kept;
        for (int i = 0; i < callbacks_per_thread; ++i) {
          auto& s = slots[t * callbacks_per_thread + i];
          auto stopped_before = tok.stop_requested();
          auto cb = std::make_unique<stop_callback<std::function<void()>>>(
            tok, std::function<void()>{[&s, &bad] {
              bad.check(!s.destroyed.load(), "ran after its destructor");
              ++s.runs;
              s.finished = true;
            }});
          if (stopped_before)
            bad.check(s.runs.load() == 1, "registered after the stop, not "
                                          "run at once");
          if (i % 2 == 0) {
            cb.reset();
            bad.check(s.runs.load() == 0 || s.finished.load(),
                      "destructor returned while its callback ran");
            s.destroyed = true;
          } else {
            kept.push_back(std::move(cb));
          }
        }
        stopped.wait();
        for (auto& cb : kept)
          cb.reset();
      });
    }
    std::uniform_int_distribution<int> spins{0, 2000};
    go.count_down();
    for (int i = spins(rng); i > 0; --i)
      std::this_thread::yield();
    CHECK(src.request_stop(errc::cancelled));
    stopped.count_down();
    for (auto& t : threads)
      t.join();
    for (size_t i = 0; i < slots.size(); ++i) {
      auto runs = slots[i].runs.load();
      if (runs > 1)
        bad.add("a callback ran " + std::to_string(runs) + " times");
      if (i % 2 == 1) {
        ++total_kept;
        if (runs != 1)
          bad.add("a callback alive at the stop did not run");
      }
      total_ran += runs;
    }
  }
  CHECK(bad.messages() == "");
  CHECK(total_ran >= total_kept);
  MESSAGE("callbacks run: " << total_ran << " (" << total_kept
                            << " of them kept until the stop)");
}

TEST_CASE("under a race of two causes, the first requester's cause wins") {
  weave::test::failures bad;
  int cancelled_wins = 0;
  for (int round = 0; round < cause_rounds; ++round) {
    stop_source src;
    auto tok = src.get_token();
    std::atomic<errc> seen_in_callback{errc{}};
    stop_callback cb{tok, [&] { seen_in_callback = tok.cause(); }};
    latch go{1};
    std::atomic<bool> won_a{false};
    std::atomic<bool> won_b{false};
    std::thread a{[&] {
      go.wait();
      won_a = src.request_stop(errc::cancelled);
    }};
    std::thread b{[&] {
      go.wait();
      won_b = src.request_stop(errc::timeout);
    }};
    go.count_down();
    a.join();
    b.join();
    if (won_a == won_b) {
      bad.add("not exactly one request_stop returned true");
      continue;
    }
    auto winner = won_a ? errc::cancelled : errc::timeout;
    cancelled_wins += won_a ? 1 : 0;
    bad.check(tok.cause() == winner, "the cause is not the winner's");
    bad.check(seen_in_callback.load() == winner,
              "the callback saw another cause");
  }
  CHECK(bad.messages() == "");
  MESSAGE("cancelled won " << cancelled_wins << " of " << cause_rounds);
}
