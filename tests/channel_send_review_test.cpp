// Review of channel::send (actors and loops) and paced loop consumers:
// stress with many actors on many scheduler threads, mixed producers,
// exceptions, and paced consumers whose loop stops while futures are pending.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::channel_status;

namespace {

/// An actor that sends `producer * stride + i` for i in [0, n), each from
/// the handler that heard the previous one was accepted.
void chain(caf::event_based_actor* self, weave::channel<int> ch, int base,
           int i, int n, weave::promise<int> done) {
  if (i == n) {
    done.set_value(n);
    return;
  }
  ch.send(self, base + i)
    .then([=]() mutable { chain(self, ch, base, i + 1, n, done); },
          [done](caf::error& err) mutable { done.set_error(err); });
}

/// Copying throws once `armed` is set.
struct touchy {
  static inline std::atomic<bool> armed{false};
  int value = 0;

  touchy() = default;
  explicit touchy(int x) : value(x) {
  }
  touchy(const touchy& other) : value(other.value) {
    if (armed)
      throw std::runtime_error("touchy copy");
  }
  touchy& operator=(const touchy&) = default;
};

} // namespace

TEST_CASE("review: 32 actors on 16 scheduler threads plus 2 putting threads "
          "into a channel of 3 drained by threads with timed gets: every "
          "item once, each producer in order") {
  constexpr int actors = 32;
  constexpr int threads = 2;
#if defined(__SANITIZE_THREAD__)
  // Every item must be through within the test's patience: under TSan on
  // two busy cores the full count once was not (the first future waited
  // more than 10 s, with handlers preempted for over 100 ms).
  constexpr int per_actor = 300;
  constexpr int per_thread = 1000;
#else
  constexpr int per_actor = 1500;
  constexpr int per_thread = 5000;
#endif
  constexpr int stride = 1000000;
  weave::runtime_config cfg;
  cfg.set("scheduler.max-threads", size_t{16});
  weave::runtime rt{std::move(cfg)};
  weave::channel<int> ch{rt, 3};
  std::vector<weave::future<int>> sent;
  for (int a = 0; a < actors; ++a) {
    weave::promise<int> done;
    sent.push_back(done.get_future());
    rt.system().spawn([=](caf::event_based_actor* self) {
      chain(self, ch, a * stride, 0, per_actor, done);
    });
  }
  std::vector<std::thread> producers;
  for (int t = 0; t < threads; ++t)
    producers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i)
        ch.put((actors + t) * stride + i);
    });
  constexpr int total = actors * per_actor + threads * per_thread;
  std::atomic<int> got{0};
  weave::test::failures bad;
  std::vector<std::vector<int>> last(2, std::vector<int>(actors + threads, -1));
  std::vector<std::thread> consumers;
  for (int c = 0; c < 2; ++c)
    consumers.emplace_back([&, c] {
      auto& seen = last[c];
      for (;;) {
        auto r = ch.get(1ms);
        if (r.status == channel_status::closed)
          return;
        if (r.status != channel_status::ok)
          continue;
        auto p = *r.value / stride;
        auto i = *r.value % stride;
        bad.check(i > seen[p], "a producer's items came out of order");
        seen[p] = i;
        ++got;
      }
    });
  for (auto& f : sent) {
    REQUIRE(f.wait_for(weave::test::patience));
    CHECK(f.get() == per_actor);
  }
  for (auto& t : producers)
    t.join();
  // Every item is in the channel now; the consumers drain it, then see the
  // end.
  ch.close();
  for (auto& t : consumers)
    t.join();
  CHECK(got.load() == total);
  CHECK(bad.messages() == "");
  auto s = ch.stats();
  CHECK(s.puts == static_cast<size_t>(total));
  CHECK(s.gets == static_cast<size_t>(total));
  CHECK(s.parked_sends == 0u);
  CHECK(s.depth == 0u);
  CHECK(s.high_water <= 3u);
}

TEST_CASE("review: a thread blocked in put is not starved by actors that "
          "keep sending") {
  weave::runtime rt;
  weave::channel<int> ch{rt, 1};
  constexpr int actors = 4;
  std::vector<weave::future<int>> sent;
  for (int a = 0; a < actors; ++a) {
    weave::promise<int> done;
    sent.push_back(done.get_future());
    rt.system().spawn([=](caf::event_based_actor* self) {
      chain(self, ch, 0, 0, 1 << 30, done);
    });
  }
  std::atomic<bool> in{false};
  std::thread producer{[&] {
    auto st = ch.put(-1, 10s);
    in = st == channel_status::ok;
  }};
  // Drain until the thread's item shows up (or give up after many items).
  int taken = 0;
  auto found = false;
  for (; taken < 200000 && !found; ++taken) {
    auto r = ch.get(weave::test::patience);
    REQUIRE(r.status == channel_status::ok);
    found = *r.value == -1;
  }
  ch.close();
  producer.join();
  for (auto& f : sent)
    REQUIRE(f.wait_for(weave::test::patience));
  CHECK(found);
  CHECK(in);
}

TEST_CASE("review: send of an item whose copy throws on a full channel "
          "throws, parks nothing, and the channel goes on") {
  weave::runtime rt;
  weave::channel<touchy> ch{rt, 1};
  REQUIRE(ch.put(touchy{1}) == channel_status::ok);
  weave::promise<std::string> outcome;
  auto res = outcome.get_future();
  touchy::armed = true;
  rt.system().spawn([ch, outcome](caf::event_based_actor* self) mutable {
    touchy x{2};
    try {
      ch.send(self, x).then([outcome]() mutable { outcome.set_value("ok"); });
      outcome.set_value("no throw");
    } catch (const std::runtime_error& e) {
      outcome.set_value(e.what());
    }
  });
  REQUIRE(res.wait_for(weave::test::patience));
  touchy::armed = false;
  CHECK(res.get() == "touchy copy");
  auto s = ch.stats();
  CHECK(s.parked_sends == 0u);
  CHECK(s.depth == 1u);
  CHECK(ch.get().value->value == 1);
  CHECK(ch.try_put(touchy{3}) == channel_status::ok);
}

TEST_CASE("review: a paced consumer whose loop stops while futures are "
          "pending gives its unstarted items back at once") {
  weave::runtime rt;
  weave::channel<int> ch{rt, 16};
  for (int i = 0; i < 6; ++i)
    REQUIRE(ch.put(i) == channel_status::ok);
  std::vector<weave::promise<void>> ps(6);
  weave::test::latch second_started{1};
  weave::test::latch third_started{1};
  weave::future<size_t> consumed;
  weave::loop lp{rt, "paced"};
  consumed = lp.submit([&](weave::loop_context& cx) {
    return ch.consume(
      cx,
      [&](int& x) {
        if (x == 1)
          second_started.count_down();
        if (x == 2)
          third_started.count_down();
        return ps[x].get_future();
      },
      2);
  });
  // 0 and 1 start; completing 0 releases the first batch, so the next one
  // ([2, 3]) comes: 2 starts, 3 waits in the consumer.
  REQUIRE(second_started.wait());
  CHECK(ch.stats().depth == 4u);
  ps[0].set_value();
  REQUIRE(third_started.wait());
  lp.stop();
  lp.join();
  auto r = consumed.get_result();
  REQUIRE_FALSE(r);
  CHECK(weave::is(r.error(), weave::errc::shut_down));
  // Futures 1 and 2 are still pending: item 3 must be back anyway.
  auto x = ch.get(weave::test::patience);
  CHECK(x.status == channel_status::ok);
  if (x)
    CHECK(*x.value == 3);
  CHECK(ch.stats().lost == 0u);
  ps[1].set_value();
  ps[2].set_value();
}

TEST_CASE("review: a failed paced consumer whose loop stops before its "
          "pending futures completed fails at once, not with broken_promise") {
  weave::runtime rt;
  weave::channel<int> ch{rt, 16};
  for (int i = 0; i < 4; ++i)
    REQUIRE(ch.put(i) == channel_status::ok);
  weave::promise<void> p0;
  weave::test::latch failed{1};
  weave::loop lp{rt, "paced"};
  weave::promise<weave::future<size_t>> inner_p;
  auto inner_f = inner_p.get_future();
  lp.submit([&](weave::loop_context& cx) {
    inner_p.set_value(ch.consume(
      cx,
      [&](int& x) -> weave::future<void> {
        if (x == 0)
          return p0.get_future();
        failed.count_down();
        return weave::internal::failed_future<void>(
          weave::make_error(weave::errc::invalid_argument, "item 1 fails"));
      },
      2));
  });
  REQUIRE(inner_f.wait_for(weave::test::patience));
  auto consumed = inner_f.get();
  // Item 1 failed: 2 and 3 stay; the result waits for future 0.
  REQUIRE(failed.wait());
  lp.stop();
  lp.join();
  auto finished = consumed.wait_for(weave::test::patience);
  CHECK(finished);
  p0.set_value();
  auto r = consumed.get_result();
  REQUIRE_FALSE(r);
  INFO(weave::render(r.error()));
  CHECK((weave::is(r.error(), weave::errc::shut_down)
         || weave::is(r.error(), weave::errc::invalid_argument)));
  CHECK(ch.stats().depth == 2u);
}
