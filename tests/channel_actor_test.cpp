// channel<T> with actors and loops: subscribers get every item, once and in
// order, with credit; a slow subscriber holds producers back; actors
// producing with offer() are told as soon as they may write again. What
// happens when a consumer dies is in channel_dead_consumer_test.cpp.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::eventually;
using weave::channel_status;
using weave::test::latch;

namespace {

constexpr size_t small_capacity = 8;

} // namespace

TEST_CASE("a subscribed actor receives every item in order, then the end") {
  weave::runtime rt;
  weave::channel<int> ch{rt, small_capacity};
  constexpr int n = 100000;
  constexpr size_t credit = 32;
  weave::promise<long> total;
  weave::test::failures bad;
  auto seen_max_batch = std::make_shared<size_t>(0);
  rt.system().spawn([=, &bad](caf::event_based_actor* self) mutable {
    ch.subscribe(self, credit);
    auto expect = std::make_shared<int>(0);
    auto sum = std::make_shared<long>(0);
    self->become(
      [=, &bad](weave::channel_batch<int>& batch) {
        *seen_max_batch = std::max(*seen_max_batch, batch.size());
        for (int x : batch.items()) {
          bad.check(x == *expect, "out of order"); // FIFO from one producer
          ++*expect;
          *sum += x;
        }
      },
      [=](weave::channel_closed&) mutable {
        total.set_value(*sum);
        self->quit();
      });
  });
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.put(i) == channel_status::ok);
  ch.close();
  CHECK(total.get_future().get() == long{n} * (n - 1) / 2);
  CHECK(bad.messages() == "");
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
  constexpr int n = 1000;
  weave::channel<int> ch{rt, capacity};
  // Not subscribed until the test says so: the producer must stop at the
  // capacity, not run ahead.
  auto consumer = rt.system().spawn([ch](caf::event_based_actor* self) {
    self->become([self, ch](int) mutable {
      ch.subscribe(self, credit);
      self->become([](weave::channel_batch<int>& b) { b.items().clear(); },
                   [self](weave::channel_closed&) { self->quit(); });
    });
  });
  std::atomic<int> accepted{0};
  std::thread producer{[&] {
    for (int i = 0; i < n; ++i) {
      if (ch.put(i) != channel_status::ok)
        break;
      ++accepted;
    }
  }};
  // The producer fills the channel and blocks: it cannot get past capacity.
  REQUIRE(eventually([&] { return ch.stats().blocked_producers == 1; }));
  CHECK(accepted.load() == static_cast<int>(capacity));
  caf::anon_send(consumer, 1);
  producer.join();
  CHECK(accepted.load() == n);
  ch.close();
  CHECK(ch.stats().high_water <= capacity);
}

TEST_CASE("an event-based producer is told when it may write again") {
  weave::runtime rt;
  weave::channel<int> ch{rt, 2};
  constexpr int n = 1000;
  weave::promise<int> offered;
  weave::test::failures bad;
  rt.system().spawn([ch, offered, &bad](caf::event_based_actor* self) mutable {
    auto next = std::make_shared<int>(0);
    auto fulls = std::make_shared<int>(0);
    auto pump = [=, &bad]() mutable {
      while (*next < n) {
        auto st = ch.offer(self, *next);
        if (st == channel_status::full) {
          ++*fulls;
          return; // a channel_writable message will come
        }
        if (!bad.check(st == channel_status::ok, "offer failed"))
          break;
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
  CHECK(bad.messages() == "");
  CHECK(count == n);
  CHECK(sum == long{n} * (n - 1) / 2);
  CHECK(offered.get_future().get() > 0); // it did hit a full channel
}

TEST_CASE("an actor told full gets channel_writable as soon as one slot is "
          "free") {
  weave::runtime rt;
  constexpr int capacity = 4;
  weave::channel<int> ch{rt, capacity};
  weave::promise<int> wrote;
  rt.system().spawn([ch, wrote](caf::event_based_actor* self) mutable {
    auto next = std::make_shared<int>(0);
    auto pump = [=]() mutable {
      while (ch.offer(self, *next) == channel_status::ok)
        if (++*next == capacity + 1) {
          wrote.set_value(*next);
          self->quit();
          return;
        }
    };
    self->become([pump](weave::channel_writable&) mutable { pump(); });
    pump();
  });
  REQUIRE(eventually([&] { return ch.stats().waiting_writers == 1; }));
  CHECK(*ch.get() == 0); // one slot, no more
  auto f = wrote.get_future();
  REQUIRE(f.wait_for(weave::test::patience));
  CHECK(f.get() == capacity + 1);
  CHECK(ch.stats().depth == static_cast<size_t>(capacity));
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

TEST_CASE("a subscriber that only the channel keeps alive is destroyed once "
          "it handled the end, though it holds the channel itself") {
  weave::runtime rt;
  weave::channel<int> ch{rt, small_capacity};
  latch ended{1};
  auto destroyed = std::make_shared<latch>(1);
  rt.system().spawn([ch, destroyed, &ended](caf::event_based_actor* self) {
    auto c = ch;
    c.subscribe(self, 1);
    // Destroyed with the behaviour, when the actor is.
    auto marker = std::shared_ptr<void>(nullptr, [destroyed](void*) {
      destroyed->count_down();
    });
    self->become([marker](weave::channel_batch<int>&) {},
                 [c, &ended](weave::channel_closed&) {
                   ended.count_down(); // and stays, idle
                 });
  });
  REQUIRE(ch.put(1) == channel_status::ok);
  ch.close();
  REQUIRE(ended.wait());
  CHECK(destroyed->wait()); // hung when the channel kept it for ever
  // Its cleanup unsubscribes it right after its behaviour is gone.
  CHECK(eventually([&] { return ch.stats().subscribers == 0; }));
}
