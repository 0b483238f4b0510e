// when_any: exactly one winner, the first to complete; every other input
// handed back untouched; clear refusal of bad inputs; cancel that takes no
// value; no leak when every handle is dropped; use from a loop.
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/weave.hpp"
#include "tests/compose_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::latch;

using weave::test::futures_of;
using weave::test::message_of;
using weave::test::racing_threads;

namespace {

/// How many times the racing test repeats its race.
constexpr size_t racing_rounds = 50;

/// The promise a racing thread is completing (the winner's continuation
/// runs inside that call).
thread_local size_t tl_completing = SIZE_MAX;

} // namespace

TEST_CASE("when_any completes with the first input to complete and hands the "
          "others back untouched") {
  std::vector<weave::promise<int>> ps(3);
  auto any = weave::when_any(futures_of(ps));
  CHECK_FALSE(any.done());
  ps[1].set_value(11);
  REQUIRE(any.done());
  auto r = any.get();
  CHECK(r.index == 1u);
  REQUIRE(r.outcome);
  CHECK(*r.outcome == 11);
  REQUIRE(r.futures.size() == 3u);
  CHECK_FALSE(r.futures[1].valid());
  CHECK_FALSE(r.futures[0].done());
  ps[0].set_value(10);
  ps[2].set_error(weave::make_error(weave::errc::timeout, "slow"));
  CHECK(r.futures[0].get() == 10);
  CHECK(weave::is(r.futures[2].get_result().error(), weave::errc::timeout));
}

TEST_CASE("when_any picks a complete input at once, and an error wins like a "
          "value") {
  weave::promise<int> pending;
  auto any = weave::when_any(std::vector<weave::future<int>>{
    pending.get_future(), weave::make_ready_future(5),
    weave::make_ready_future(6)});
  REQUIRE(any.done());
  auto r = any.get();
  REQUIRE((r.index == 1u || r.index == 2u));
  CHECK(*r.outcome == static_cast<int>(r.index) + 4);
  auto other = 3 - r.index;
  CHECK(r.futures[other].get() == static_cast<int>(other) + 4);
  auto broken = [] {
    weave::promise<int> p;
    return p.get_future();
  }();
  std::vector<weave::future<int>> fs{pending.get_future(), broken};
  auto e = weave::when_any(fs.begin(), fs.end()).get();
  CHECK(e.index == 1u);
  CHECK(weave::is(e.outcome.error(), weave::errc::broken_promise));
}

TEST_CASE("when_any of no futures is refused with invalid_argument") {
  CHECK(message_of([] { weave::when_any(std::vector<weave::future<int>>{}); })
        == "weave::invalid_argument: when_any: no futures given (an empty "
           "range has no first to complete)");
}

TEST_CASE("when_any refuses an invalid or consumed input, naming its "
          "position, and consumes nothing") {
  auto ready = weave::make_ready_future(1);
  CHECK(message_of([&] {
    weave::when_any(std::vector<weave::future<int>>{ready, {}});
  }).find("invalid_argument: when_any: the future at position 1 is invalid")
        != std::string::npos);
  auto used = weave::make_ready_future(2);
  used.get();
  CHECK(message_of([&] {
    weave::when_any(std::vector<weave::future<int>>{ready, ready, used});
  }).find("already_retrieved: when_any: the future at position 2 was already "
          "consumed")
        != std::string::npos);
  CHECK(ready.get() == 1);
}

TEST_CASE("when_any under racing completions: exactly one winner, the one "
          "whose completion ran first, and every loser keeps its value") {
  for (size_t round = 0; round < racing_rounds; ++round) {
    std::vector<weave::promise<size_t>> ps(racing_threads);
    std::atomic<size_t> runs{0};
    std::atomic<size_t> completed_by{SIZE_MAX};
    auto any = weave::when_any(futures_of(ps)).then(
      [&](weave::result<weave::when_any_result<size_t>>& r) {
        ++runs;
        completed_by = tl_completing;
        return std::move(*r);
      });
    latch go{1};
    std::vector<std::thread> threads;
    for (size_t t = 0; t < racing_threads; ++t)
      threads.emplace_back([&, t] {
        go.wait();
        tl_completing = t;
        ps[t].set_value(t * 100);
        tl_completing = SIZE_MAX;
      });
    go.count_down();
    for (auto& th : threads)
      th.join();
    auto r = any.get();
    REQUIRE(runs == 1u);
    CHECK(r.index == completed_by.load());
    REQUIRE(r.outcome);
    CHECK(*r.outcome == r.index * 100);
    for (size_t i = 0; i < racing_threads; ++i)
      if (i != r.index)
        CHECK(r.futures[i].get() == i * 100);
  }
}

TEST_CASE("when_any: of inputs completed one after the other, the first "
          "wins") {
  std::vector<weave::promise<int>> ps(racing_threads);
  auto any = weave::when_any(futures_of(ps));
  // Thread i completes its promise only after thread i-1 has completed its
  // own: the order is fixed, the winner is 0.
  std::vector<std::unique_ptr<latch>> turns;
  for (size_t i = 0; i <= racing_threads; ++i)
    turns.push_back(std::make_unique<latch>(1));
  std::vector<std::thread> threads;
  for (size_t t = racing_threads; t-- > 0;)
    threads.emplace_back([&, t] {
      turns[t]->wait();
      ps[t].set_value(static_cast<int>(t));
      turns[t + 1]->count_down();
    });
  turns[0]->count_down();
  for (auto& th : threads)
    th.join();
  auto r = any.get();
  CHECK(r.index == 0u);
  CHECK(*r.outcome == 0);
}

TEST_CASE("cancel on the when_any result before any input completes takes no "
          "input's value and cancels no input") {
  std::vector<weave::promise<int>> ps(2);
  auto fs = futures_of(ps);
  auto any = weave::when_any(fs);
  CHECK(any.cancel());
  CHECK(weave::is(any.get_result().error(), weave::errc::cancelled));
  CHECK_FALSE(fs[0].done());
  ps[0].set_value(1);
  ps[1].set_value(2);
  CHECK(fs[0].get() == 1);
  CHECK(fs[1].get() == 2);
  // Once an input has won, cancel comes too late.
  weave::promise<int> p;
  auto won = weave::when_any(std::vector<weave::future<int>>{p.get_future()});
  p.set_value(3);
  CHECK_FALSE(won.cancel());
  CHECK(*won.get().outcome == 3);
}

TEST_CASE("a continuation of the when_any result may wait for the next "
          "winner among the rest while another thread completes it") {
  std::vector<weave::promise<int>> ps(3);
  auto chain = weave::when_any(futures_of(ps)).then(
    [](weave::result<weave::when_any_result<int>>& r) {
      auto rest = std::move(r->futures);
      rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(r->index));
      // Blocks this (plain) thread until the test thread completes one of
      // the rest: no weave lock may be held here.
      auto next = weave::when_any(std::move(rest)).get();
      return *r->outcome * 10 + *next.outcome;
    });
  std::thread first{[&] { ps[2].set_value(1); }};
  ps[0].set_value(4);
  first.join();
  ps[1].set_value(5);
  // Or ps[0] won, on the test thread, which then waited for ps[2].
  auto v = chain.get();
  CHECK((v == 14 || v == 41));
}

TEST_CASE("dropping every when_any handle before completion leaks nothing") {
  std::atomic<int> destroyed{0};
  using item = std::shared_ptr<weave::test::on_destroy>;
  {
    std::vector<weave::promise<item>> ps(4);
    weave::when_any(futures_of(ps));
    ps[2].set_value(
      std::make_shared<weave::test::on_destroy>([&destroyed] { ++destroyed; }));
    ps[3].set_value(
      std::make_shared<weave::test::on_destroy>([&destroyed] { ++destroyed; }));
  }
  CHECK(destroyed == 2);
}

TEST_CASE("when_any inside a loop: its continuation runs in the loop") {
  weave::runtime rt;
  weave::loop lp{rt, "any-loop"};
  latch gate{1};
  auto f = lp.submit([&gate](weave::loop_context& cx) {
    auto slow = cx.offload([&gate] {
      gate.wait();
      return 1;
    });
    auto quick = cx.offload([] { return 2; });
    return weave::when_any(std::vector<weave::future<int>>{slow, quick})
      .then([](weave::result<weave::when_any_result<int>>& r) {
        return std::to_string(r->index) + ":" + std::to_string(*r->outcome)
               + "@" + weave::this_thread_name();
      });
  });
  CHECK(f.get() == "1:2@any-loop");
  gate.count_down();
}
