// channel<T>::consume in a loop whose on_item returns a future: the loop
// takes the next item only while fewer than `limit` futures are pending; a
// failure stops it and gives back what it did not start; nothing is lost
// when the loop stops.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using weave::channel_status;

namespace {

/// Counts work in flight and remembers the most seen at once.
struct gauge {
  std::atomic<int> now{0};
  std::atomic<int> most{0};

  void enter() {
    auto n = ++now;
    auto m = most.load();
    while (n > m && !most.compare_exchange_weak(m, n)) {
    }
  }

  void leave() {
    --now;
  }
};

weave::future<void> ready() {
  weave::promise<void> p;
  p.set_value();
  return p.get_future();
}

} // namespace

TEST_CASE("a paced loop consumer never has more than its limit of futures "
          "pending, and reaches it") {
  constexpr int n = 2000;
  constexpr size_t limit = 5;
  weave::runtime rt;
  weave::blocking_pool pool{rt, limit + 2, "paced-work"};
  weave::loop lp{rt, "paced"};
  weave::channel<int> ch{rt, 64};
  gauge g;
  weave::test::latch all_in{limit}; // the first `limit` jobs meet here
  auto order = std::make_shared<std::vector<int>>();
  auto consumed = lp.submit([&](weave::loop_context& cx) {
    return ch.consume(
      cx,
      [&, order](int& x) {
        g.enter(); // on the loop thread, when the item starts
        order->push_back(x);
        auto work = [&g, &all_in, x] {
          if (x < static_cast<int>(limit)) {
            all_in.count_down();
            all_in.wait(); // `limit` jobs run at once, no more
          }
          g.leave();
        };
        // Alternate futures completing on a pool thread and in the loop.
        if (x % 2 == 0)
          return pool.submit(work);
        return cx.offload(pool, work);
      },
      limit);
  });
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.put(i) == channel_status::ok);
  ch.close();
  REQUIRE(consumed.wait_for(weave::test::patience));
  CHECK(consumed.get() == static_cast<size_t>(n));
  CHECK(g.most.load() == static_cast<int>(limit));
  CHECK(g.now.load() == 0);
  REQUIRE(order->size() == static_cast<size_t>(n));
  CHECK(std::is_sorted(order->begin(), order->end()));
  auto s = ch.stats();
  CHECK(s.lost == 0u);
  CHECK(s.gets == static_cast<size_t>(n));
}

TEST_CASE("a paced consumer whose futures are already complete takes "
          "100000 items without growing the stack") {
  constexpr int n = 100000;
  weave::runtime rt;
  weave::loop lp{rt, "paced"};
  weave::channel<int> ch{rt, 128};
  long sum = 0;
  auto consumed = lp.submit([&](weave::loop_context& cx) {
    return ch.consume(
      cx,
      [&sum](int& x) {
        sum += x;
        return ready();
      },
      4);
  });
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.put(i) == channel_status::ok);
  ch.close();
  CHECK(consumed.get() == static_cast<size_t>(n));
  CHECK(sum == long{n} * (n - 1) / 2);
}

TEST_CASE("a failed item future stops a paced consumer: pending futures "
          "finish first, the unstarted items go back in order") {
  constexpr int n = 40;
  constexpr int fatal = 7;
  constexpr size_t limit = 3;
  weave::runtime rt;
  weave::loop lp{rt, "paced"};
  weave::channel<int> ch{rt, n};
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.put(i) == channel_status::ok);
  auto started = std::make_shared<std::vector<int>>();
  auto pending = std::make_shared<int>(0);
  auto pending_at_end = std::make_shared<int>(-1);
  auto consumed = lp.submit([&](weave::loop_context& cx) {
    return ch
      .consume(
        cx,
        [&cx, started, pending](int& x) {
          started->push_back(x);
          ++*pending;
          auto v = x;
          return cx.sleep(std::chrono::milliseconds{1})
            .then([pending, v](weave::result<void>&) {
              --*pending;
              if (v == fatal)
                throw std::runtime_error("item 7 broke");
            });
        },
        limit)
      .then([pending, pending_at_end](weave::result<size_t>& r) {
        *pending_at_end = *pending;
        if (!r)
          weave::raise(r.error());
        return *r;
      });
  });
  REQUIRE(consumed.wait_for(weave::test::patience));
  auto r = consumed.get_result();
  REQUIRE_FALSE(r);
  CHECK(weave::render(r.error()) == "weave::job_failed: item 7 broke");
  CHECK(*pending_at_end == 0); // nothing it started outlived it
  // It started the fatal item and at most `limit` - 1 after it.
  auto last = started->back();
  CHECK(last >= fatal);
  CHECK(last < fatal + static_cast<int>(limit));
  for (size_t i = 0; i < started->size(); ++i)
    CHECK((*started)[i] == static_cast<int>(i));
  // The rest is back, in order, and the channel is open.
  auto s = ch.stats();
  CHECK(s.subscribers == 0u);
  CHECK(s.lost == 0u);
  CHECK(s.depth == static_cast<size_t>(n - last - 1));
  for (int i = last + 1; i < n; ++i) {
    auto x = ch.try_get();
    REQUIRE(x.status == channel_status::ok);
    CHECK(*x.value == i);
  }
}

TEST_CASE("on_item throwing, or returning an invalid future, fails a paced "
          "consumer with that error") {
  weave::runtime rt;
  weave::loop lp{rt, "paced"};
  weave::channel<int> ch{rt, 8};
  for (int i = 0; i < 4; ++i)
    REQUIRE(ch.put(i) == channel_status::ok);
  SUBCASE("throws") {
    auto consumed = lp.submit([&](weave::loop_context& cx) {
      return ch.consume(
        cx,
        [](int& x) -> weave::future<void> {
          if (x == 1)
            throw std::runtime_error("no");
          return ready();
        },
        2);
    });
    auto r = consumed.get_result();
    REQUIRE_FALSE(r);
    CHECK(weave::render(r.error()) == "weave::job_failed: no");
    CHECK(ch.stats().depth == 2u); // items 2 and 3 are back
  }
  SUBCASE("invalid future") {
    auto consumed = lp.submit([&](weave::loop_context& cx) {
      return ch.consume(
        cx, [](int&) { return weave::future<void>{}; }, 2);
    });
    auto r = consumed.get_result();
    REQUIRE_FALSE(r);
    CHECK(weave::is(r.error(), weave::errc::invalid_argument));
    CHECK(ch.stats().depth == 3u);
  }
}

TEST_CASE("a paced consumer whose loop stops loses nothing: unstarted items "
          "go back to the channel") {
  constexpr int n = 20;
  weave::runtime rt;
  weave::blocking_pool pool{rt, 2, "paced-work"};
  weave::channel<int> ch{rt, n};
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.put(i) == channel_status::ok);
  weave::test::latch gate{1};
  weave::test::latch two_started{2};
  weave::future<size_t> consumed;
  {
    weave::loop lp{rt, "paced"};
    consumed = lp.submit([&](weave::loop_context& cx) {
      return ch.consume(
        cx,
        [&](int&) {
          return pool.submit([&] {
            two_started.count_down();
            gate.wait();
          });
        },
        2);
    });
    REQUIRE(two_started.wait());
    lp.stop();
    auto r = consumed.get_result();
    REQUIRE_FALSE(r);
    CHECK(weave::is(r.error(), weave::errc::shut_down));
    gate.count_down();
    lp.join();
  }
  // Two started; their batch (up to 2 items) and the rest are back.
  auto s = ch.stats();
  CHECK(s.lost == 0u);
  CHECK(s.depth == static_cast<size_t>(n - 2));
  auto x = ch.try_get();
  REQUIRE(x.status == channel_status::ok);
  CHECK(*x.value == 2);
}
