// channel<T>: promises 3 (per-producer FIFO), 4 (capacity, release of
// blocked producers), 1 (no item lost or duplicated), 5 and 7.
#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::channel_status;
using weave::test::latch;

namespace {

constexpr size_t small_capacity = 8;
constexpr int producers = 4;
constexpr int items_per_producer = 250000;

/// An item tagged with its producer and sequence number.
struct tagged {
  int producer;
  int seq;
};

} // namespace

TEST_CASE("put and get between threads: values, statuses, close") {
  weave::runtime rt;
  weave::channel<int> ch{rt, 2};
  CHECK(ch.try_put(1) == channel_status::ok);
  CHECK(ch.put(2) == channel_status::ok);
  CHECK(ch.try_put(3) == channel_status::full);
  CHECK(ch.put(3, 10ms) == channel_status::timeout);
  auto a = ch.get();
  REQUIRE(a);
  CHECK(*a == 1);
  CHECK(*ch.try_get() == 2);
  CHECK(ch.try_get().status == channel_status::empty);
  CHECK(ch.get(10ms).status == channel_status::timeout);
  CHECK(ch.put(4) == channel_status::ok);
  CHECK(ch.close());
  CHECK_FALSE(ch.close()); // idempotent
  CHECK(ch.put(5) == channel_status::closed);
  CHECK(*ch.get() == 4); // drained after close
  CHECK(ch.get().status == channel_status::closed);
  auto s = ch.stats();
  CHECK(s.puts == 3u);
  CHECK(s.gets == 3u);
  CHECK(s.high_water == 2u);
}

TEST_CASE("a rejected item is not moved from") {
  weave::runtime rt;
  weave::channel<std::unique_ptr<int>> ch{rt, 1};
  CHECK(ch.put(std::make_unique<int>(1)) == channel_status::ok);
  auto keep = std::make_unique<int>(2);
  CHECK(ch.try_put(std::move(keep)) == channel_status::full);
  REQUIRE(keep != nullptr);
  CHECK(*keep == 2);
}

TEST_CASE("capacity is never exceeded, FIFO holds per producer, nothing is "
          "lost or duplicated") {
  weave::runtime rt;
  weave::channel<tagged> ch{rt, small_capacity};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      for (int i = 0; i < items_per_producer; ++i)
        REQUIRE(ch.put(tagged{p, i}) == channel_status::ok);
    });
  std::vector<int> next(producers, 0);
  long count = 0;
  bool fifo = true;
  while (count < long{producers} * items_per_producer) {
    auto r = ch.get();
    REQUIRE(r);
    if (r->seq != next[r->producer])
      fifo = false;
    next[r->producer] = r->seq + 1;
    ++count;
  }
  for (auto& t : threads)
    t.join();
  CHECK(fifo);
  for (int p = 0; p < producers; ++p)
    CHECK(next[p] == items_per_producer);
  auto s = ch.stats();
  CHECK(s.high_water <= small_capacity);
  CHECK(s.high_water == small_capacity); // it was full at times
  CHECK(s.puts == static_cast<size_t>(count));
  CHECK(ch.try_get().status == channel_status::empty);
}

TEST_CASE("close releases every blocked producer and consumer at once") {
  weave::runtime rt;
  weave::channel<int> full{rt, 1};
  weave::channel<int> empty{rt, 1};
  REQUIRE(full.put(0) == channel_status::ok);
  constexpr int waiters = 3;
  latch blocked{2 * waiters};
  std::atomic<int> released_closed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < waiters; ++i) {
    threads.emplace_back([&] {
      blocked.count_down();
      if (full.put(1) == channel_status::closed)
        ++released_closed;
    });
    threads.emplace_back([&] {
      blocked.count_down();
      if (empty.get().status == channel_status::closed)
        ++released_closed;
    });
  }
  REQUIRE(blocked.wait());
  // Until close, all of them stay blocked (they cannot make progress).
  std::this_thread::sleep_for(20ms);
  CHECK(released_closed.load() == 0);
  full.close();
  empty.close();
  for (auto& t : threads)
    t.join();
  CHECK(released_closed.load() == 2 * waiters);
}

TEST_CASE("overflow policies behave as documented and count drops") {
  weave::runtime rt;
  SUBCASE("drop_newest") {
    weave::channel<int> ch{rt, 2, weave::overflow::drop_newest};
    CHECK(ch.put(1) == channel_status::ok);
    CHECK(ch.put(2) == channel_status::ok);
    CHECK(ch.put(3) == channel_status::dropped);
    CHECK(*ch.get() == 1);
    CHECK(*ch.get() == 2);
    CHECK(ch.stats().drops == 1u);
  }
  SUBCASE("drop_oldest") {
    weave::channel<int> ch{rt, 2, weave::overflow::drop_oldest};
    for (int i = 1; i <= 5; ++i)
      CHECK(ch.put(i) == channel_status::ok);
    CHECK(*ch.get() == 4);
    CHECK(*ch.get() == 5);
    CHECK(ch.stats().drops == 3u);
  }
  SUBCASE("fail") {
    weave::channel<int> ch{rt, 1, weave::overflow::fail};
    CHECK(ch.put(1) == channel_status::ok);
    CHECK(ch.put(2) == channel_status::full); // does not block
    CHECK(ch.stats().drops == 0u);
    CHECK(*ch.get() == 1);
  }
}

TEST_CASE("bad input: capacity 0, negative timeouts, blocking on a scheduler") {
  weave::runtime rt;
  CHECK_THROWS_AS(weave::channel<int>(rt, 0), weave::exception);
  weave::channel<int> ch{rt, 1};
  CHECK_THROWS_AS(ch.put(1, -1ms), weave::exception);
  CHECK_THROWS_AS(ch.get(-1ms), weave::exception);
  caf::scoped_actor test{rt.system()};
  auto probe = rt.system().spawn([ch]() mutable -> caf::behavior {
    return {[ch](int) mutable {
      try {
        ch.get();
        return std::string{"blocked"};
      } catch (const weave::exception& e) {
        return std::string{weave::to_string(e.code())};
      }
    }};
  });
  std::string verdict;
  test->request(probe, weave::test::patience, 1)
    .receive([&](std::string& v) { verdict = v; }, [](caf::error&) {});
  CHECK(verdict == "would_deadlock");
  caf::anon_send_exit(probe, caf::exit_reason::user_shutdown);
}

TEST_CASE("a subscribed actor receives every item in order, then the end") {
  weave::runtime rt;
  weave::channel<int> ch{rt, small_capacity};
  constexpr int n = 100000;
  constexpr size_t credit = 32;
  weave::promise<long> total;
  auto seen_max_batch = std::make_shared<size_t>(0);
  rt.system().spawn([=](caf::event_based_actor* self) mutable {
    auto ch2 = ch;
    ch2.subscribe(self, credit);
    auto expect = std::make_shared<int>(0);
    auto sum = std::make_shared<long>(0);
    self->become(
      [=](weave::channel_batch<int>& batch) {
        *seen_max_batch = std::max(*seen_max_batch, batch.size());
        for (int x : batch.items()) {
          REQUIRE(x == *expect); // FIFO from the one producer
          ++*expect;
          *sum += x;
        }
      },
      [=](weave::channel_closed&) mutable {
        total.set_value(*sum);
        self->quit();
      });
  });
  std::thread producer{[&] {
    for (int i = 0; i < n; ++i)
      REQUIRE(ch.put(i) == channel_status::ok);
    ch.close();
  }};
  producer.join();
  CHECK(total.get_future().get() == long{n} * (n - 1) / 2);
  CHECK(*seen_max_batch <= credit); // the mailbox never held more
  auto s = ch.stats();
  CHECK(s.high_water <= small_capacity);
  CHECK(s.gets == static_cast<size_t>(n));
  CHECK(s.lost == 0u);
}

TEST_CASE("a slow consumer actor holds back a fast producer thread") {
  weave::runtime rt;
  constexpr size_t capacity = 4;
  constexpr size_t credit = 2;
  weave::channel<int> ch{rt, capacity};
  latch go{1};
  auto consumer = rt.system().spawn([ch, &go](caf::event_based_actor* self) {
    auto c = ch;
    // Not subscribed until the test says so: the producer must stop at the
    // capacity, not run ahead.
    self->become([self, c, &go](int) mutable {
      go.wait();
      c.subscribe(self, credit);
      self->become([](weave::channel_batch<int>&) {},
                   [self](weave::channel_closed&) { self->quit(); });
    });
  });
  std::atomic<int> accepted{0};
  std::thread producer{[&] {
    for (int i = 0; i < 1000; ++i) {
      if (ch.put(i) != channel_status::ok)
        break;
      ++accepted;
    }
  }};
  // The producer fills the channel and blocks: it cannot get past capacity.
  while (ch.stats().depth < capacity)
    std::this_thread::yield();
  CHECK(accepted.load() == static_cast<int>(capacity));
  caf::anon_send(consumer, 1);
  go.count_down();
  producer.join();
  CHECK(accepted.load() == 1000);
  ch.close();
  CHECK(ch.stats().high_water <= capacity);
}

TEST_CASE("an event-based producer is told when it may write again") {
  weave::runtime rt;
  weave::channel<int> ch{rt, 2};
  constexpr int n = 1000;
  weave::promise<int> offered;
  rt.system().spawn([ch, offered](caf::event_based_actor* self) mutable {
    auto next = std::make_shared<int>(0);
    auto fulls = std::make_shared<int>(0);
    auto pump = [=]() mutable {
      while (*next < n) {
        auto st = ch.offer(self, *next);
        if (st == channel_status::full) {
          ++*fulls;
          return; // a channel_writable message will come
        }
        REQUIRE(st == channel_status::ok);
        ++*next;
      }
      offered.set_value(*fulls);
      ch.close();
      self->quit();
    };
    pump();
    self->become([pump](weave::channel_writable&) mutable { pump(); });
  });
  long sum = 0;
  int count = 0;
  while (auto r = ch.get()) {
    CHECK(*r == count);
    sum += *r;
    ++count;
  }
  CHECK(count == n);
  CHECK(sum == long{n} * (n - 1) / 2);
  CHECK(offered.get_future().get() > 0); // it did hit a full channel
}

TEST_CASE("a consumer actor that dies mid-stream releases its producers") {
  weave::runtime rt;
  weave::channel<int> ch{rt, 4};
  auto consumer = rt.system().spawn([ch](caf::event_based_actor* self) {
    auto c = ch;
    c.subscribe(self, 1);
    self->become([self](weave::channel_batch<int>& b) {
      if (b[0] == 10)
        self->quit(caf::exit_reason::user_shutdown);
    });
  });
  channel_status last = channel_status::ok;
  int accepted = 0;
  std::thread producer{[&] {
    for (int i = 0; i < 100000; ++i) {
      last = ch.put(i);
      if (last != channel_status::ok)
        break;
      ++accepted;
    }
  }};
  producer.join(); // would hang if the death did not release it
  CHECK(last == channel_status::closed);
  CHECK(accepted < 100000);
  CHECK(ch.close_reason() == caf::exit_reason::user_shutdown);
  static_cast<void>(consumer);
}

TEST_CASE("runtime shutdown closes channels and releases waiters") {
  weave::channel<int>* leaked = nullptr;
  channel_status st = channel_status::ok;
  weave::shutdown_report report;
  {
    weave::runtime rt;
    auto ch = std::make_unique<weave::channel<int>>(rt, 1);
    REQUIRE(ch->put(1) == channel_status::ok);
    latch waiting{1};
    std::thread producer{[&] {
      waiting.count_down();
      st = ch->put(2);
    }};
    REQUIRE(waiting.wait());
    report = rt.shutdown(weave::test::patience);
    producer.join();
    leaked = ch.get();
    CHECK(leaked->closed());
  }
  CHECK(st == channel_status::closed);
  CHECK(report.channels_closed == 1u);
}

TEST_CASE("a loop consumes a channel: items in order, in the loop, then done") {
  weave::runtime rt;
  weave::loop lp{rt, "consumer-loop"};
  weave::channel<int> ch{rt, small_capacity};
  constexpr int n = 10000;
  auto wrong_thread = std::make_shared<std::atomic<int>>(0);
  auto seen = std::make_shared<std::vector<int>>();
  auto done = lp.submit([&, wrong_thread, seen](weave::loop_context& cx) {
    return ch.consume(cx, [wrong_thread, seen](int& x) {
      if (weave::this_thread_name() != "consumer-loop")
        ++*wrong_thread;
      seen->push_back(x);
    });
  });
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.put(i) == channel_status::ok);
  ch.close();
  CHECK(done.get() == static_cast<size_t>(n));
  REQUIRE(seen->size() == static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    REQUIRE((*seen)[i] == i);
  CHECK(wrong_thread->load() == 0);
}
