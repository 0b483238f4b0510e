// Future and channel waits that a stop_token ends: the outcome is the
// token's cause, no value or item is lost, a stopped put keeps its item, a
// stopped get takes nothing, the capacity holds, a stop at a random point
// is never missed, and the waits refuse to block a scheduler thread.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/weave.hpp"
#include "tests/stop_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::channel_status;
using weave::errc;
using weave::stop_source;
using weave::stop_token;
using weave::test::eventually;
using weave::test::latch;
using weave::test::thrown_code;

namespace {

/// Rounds of the missed-stop hunt.
constexpr int stop_rounds = 1000;

/// A short wait that must run to its end.
constexpr auto short_wait = std::chrono::milliseconds{20};

/// A timeout far longer than any test may take.
constexpr auto long_timeout = std::chrono::seconds{30};

/// Creates the condition "the other thread is probably inside its wait"
/// (nothing waits for it to pass: the outcome is the same either way).
constexpr auto settle = std::chrono::milliseconds{2};


} // namespace

TEST_CASE("future and channel waits never miss a stop issued at a random "
          "point") {
  std::mt19937 rng{13};
  std::uniform_int_distribution<int> spins{0, 300};
  for (int i = 0; i < stop_rounds; ++i) {
    weave::promise<int> p;
    auto f = p.get_future();
    weave::channel<int> full{1};
    REQUIRE(full.put(0) == channel_status::ok);
    weave::channel<int> empty{1};
    stop_source src;
    auto tok = src.get_token();
    std::atomic<bool> future_done{true};
    std::atomic<channel_status> put_status{channel_status::ok};
    std::atomic<channel_status> get_status{channel_status::ok};
    latch done{3};
    std::thread a{[&] {
      future_done = f.wait(tok);
      done.count_down();
    }};
    std::thread b{[&] {
      put_status = full.put(1, tok);
      done.count_down();
    }};
    std::thread c{[&] {
      get_status = empty.get(tok).status;
      done.count_down();
    }};
    for (int n = spins(rng); n > 0; --n)
      std::this_thread::yield();
    src.request_stop();
    if (!done.wait()) {
      FAIL_CHECK("a wait missed the stop in round " << i);
      p.set_value(0);
      full.close();
      empty.close();
    }
    a.join();
    b.join();
    c.join();
    CHECK_FALSE(future_done);
    CHECK(put_status == channel_status::stopped);
    CHECK(get_status == channel_status::stopped);
    CHECK(full.stats().depth == 1u);
  }
}

TEST_CASE("future waits stopped: the token's cause, and the value is not "
          "lost") {
  weave::promise<int> p;
  auto f = p.get_future();
  stop_source src;
  std::string code;
  std::string message;
  std::thread waiter{[&] {
    try {
      f.get(src.get_token());
    } catch (const weave::exception& e) {
      code = weave::to_string(e.code());
      message = e.what();
    }
  }};
  std::this_thread::sleep_for(settle);
  src.request_stop(errc::timeout);
  waiter.join();
  CHECK(code == "timeout");
  CHECK(message.find("future::get") != std::string::npos);
  auto res = f.get_result(src.get_token());
  REQUIRE_FALSE(res);
  CHECK(weave::is(res.error(), errc::timeout));
  CHECK_FALSE(f.wait(src.get_token()));
  CHECK_FALSE(f.wait_for(src.get_token(), std::chrono::hours::max()));
  CHECK(thrown_code([&] { f.wait_for(src.get_token(), -1ms); })
        == "invalid_argument");
  p.set_value(42);
  CHECK(f.wait(src.get_token())); // done: the token is not looked at
  CHECK(f.get(src.get_token()) == 42);
}

TEST_CASE("future::wait_for with a token times out or completes as "
          "without one") {
  weave::promise<int> p;
  auto f = p.get_future();
  stop_source src;
  CHECK_FALSE(f.wait_for(src.get_token(), short_wait));
  std::thread setter{[&] {
    std::this_thread::sleep_for(settle);
    p.set_value(7);
  }};
  CHECK(f.wait_for(src.get_token(), long_timeout));
  setter.join();
  CHECK(f.get(stop_token{}) == 7);
}

TEST_CASE("a put stopped on a full channel keeps its item with the caller") {
  weave::channel<std::unique_ptr<int>> ch{1};
  REQUIRE(ch.put(std::make_unique<int>(1)) == channel_status::ok);
  stop_source src;
  auto item = std::make_unique<int>(2);
  channel_status st = channel_status::ok;
  std::thread producer{[&] { st = ch.put(std::move(item), src.get_token()); }};
  REQUIRE(eventually([&] { return ch.stats().blocked_producers == 1; }));
  src.request_stop(errc::shut_down);
  producer.join();
  CHECK(st == channel_status::stopped);
  REQUIRE(item != nullptr); // not moved from
  CHECK(*item == 2);
  CHECK(src.get_token().cause() == errc::shut_down);
  CHECK(ch.stats().depth == 1u);
  CHECK(ch.stats().high_water <= 1u);
  // Stopped before the call: full → stopped at once; the timed form too.
  CHECK(ch.put(std::move(item), src.get_token()) == channel_status::stopped);
  CHECK(ch.put(std::move(item), std::chrono::hours::max(), src.get_token())
        == channel_status::stopped);
  REQUIRE(item != nullptr);
  auto first = ch.get();
  REQUIRE(first);
  CHECK(**first == 1);
  // With room, a stopped token does not matter: the put does not wait.
  CHECK(ch.put(std::move(item), src.get_token()) == channel_status::ok);
  CHECK(item == nullptr);
  CHECK(std::string{weave::to_string(channel_status::stopped)} == "stopped");
}

TEST_CASE("a get stopped on an empty channel takes nothing") {
  weave::channel<int> ch{4};
  stop_source src;
  stop_source other;
  channel_status st = channel_status::ok;
  weave::channel_result<int> second;
  std::thread consumer{[&] { st = ch.get(src.get_token()).status; }};
  std::thread survivor{[&] { second = ch.get(long_timeout, other.get_token()); }};
  REQUIRE(eventually([&] { return ch.stats().blocked_consumers == 2; }));
  src.request_stop(errc::cancelled);
  consumer.join();
  CHECK(st == channel_status::stopped);
  // The other consumer's token was not stopped: it still waits, and gets
  // the next item.
  CHECK(ch.put(5) == channel_status::ok);
  survivor.join();
  REQUIRE(second);
  CHECK(*second == 5);
  CHECK(ch.put(6) == channel_status::ok);
  CHECK(ch.get(long_timeout, src.get_token()).value == 6); // item at hand
  CHECK(ch.get(src.get_token()).status == channel_status::stopped);
  CHECK(ch.get(long_timeout, src.get_token()).status
        == channel_status::stopped);
  CHECK(ch.stats().depth == 0u);
}

TEST_CASE("producers stopped at random: nothing lost or duplicated, "
          "capacity respected") {
  constexpr size_t capacity = 4;
  constexpr int producers = 4;
  constexpr int items_each = 2000;
  weave::channel<int> ch{capacity};
  stop_source src;
  std::vector<std::vector<int>> kept(producers);
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      for (int i = 0; i < items_each; ++i) {
        auto x = p * items_each + i;
        if (ch.put(x, src.get_token()) != channel_status::ok)
          kept[p].push_back(x);
      }
    });
  std::vector<int> got;
  stop_source consumer_stop;
  std::thread consumer{[&] {
    for (;;) {
      auto r = ch.get(consumer_stop.get_token());
      if (!r)
        break;
      got.push_back(*r);
      if (got.size() == static_cast<size_t>(items_each))
        src.request_stop(errc::cancelled);
    }
  }};
  for (auto& t : threads)
    t.join();
  ch.close();
  consumer.join();
  std::vector<int> all = got;
  for (auto& k : kept)
    all.insert(all.end(), k.begin(), k.end());
  std::sort(all.begin(), all.end());
  CHECK(all.size() == static_cast<size_t>(producers * items_each));
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  CHECK(ch.stats().high_water <= capacity);
  CHECK(src.stop_requested());
}

TEST_CASE("stop-aware waits refuse to block a scheduler thread") {
  weave::runtime rt;
  weave::channel<int> ch{rt, 1};
  stop_source src;
  caf::scoped_actor test{rt.system()};
  auto probe = rt.system().spawn([ch, src]() mutable -> caf::behavior {
    return {[ch, src](int) mutable {
      weave::promise<int> p;
      auto f = p.get_future();
      std::mutex mtx;
      std::condition_variable cv;
      std::unique_lock<std::mutex> lock{mtx};
      auto tok = src.get_token();
      return thrown_code([&] { weave::sleep_for(tok, 1ms); }) + ","
             + thrown_code([&] { f.get(tok); }) + ","
             + thrown_code([&] { ch.get(tok); }) + ","
             + thrown_code([&] { ch.put(1, tok); }) + ","
             + thrown_code([&] { weave::wait(tok, cv, lock, [] { return false; }); });
    }};
  });
  std::string verdict;
  test->request(probe, weave::test::patience, 1)
    .receive([&](std::string& v) { verdict = v; }, [](caf::error&) {});
  CHECK(verdict
        == "would_deadlock,would_deadlock,would_deadlock,would_deadlock,"
           "would_deadlock");
  caf::anon_send_exit(probe, caf::exit_reason::user_shutdown);
}
