// channel<T> with actors and loops: subscribers get every item in order with
// credit (promises 1, 3), actors producing with offer() are told when they
// may write again (promise 4), and a consumer that dies loses nothing: the
// items it never read go back to the front of the channel.
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
using weave::channel_status;
using weave::test::latch;

namespace {

constexpr size_t small_capacity = 8;

/// Waits until `pred` holds (it polls an exact condition); false after
/// `limit`.
template <class Pred>
bool eventually(Pred pred,
                std::chrono::milliseconds limit = weave::test::patience) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until)
      return false;
    std::this_thread::yield();
  }
  return true;
}

/// Waits for the down message of the actor `self` monitors.
bool received_down(caf::scoped_actor& self) {
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; },
                caf::after(weave::test::patience) >> [] {});
  return down;
}

/// "shut_down", "value", or the rendered error.
template <class T>
std::string outcome(const weave::result<T>& r) {
  if (r)
    return "value";
  if (weave::is(r.error(), weave::errc::shut_down))
    return "shut_down";
  return weave::render(r.error());
}

enum class death { quits, killed };

/// An actor that, sent an int, subscribes to `ch` and dies before it reads
/// the batch that subscribing put into its mailbox: it quits in the same
/// handler, or it has sent itself a kill exit message first (queued ahead of
/// the batch).
caf::actor spawn_doomed_subscriber(weave::runtime& rt, weave::channel<int> ch,
                                   size_t credit, death how) {
  return rt.system().spawn(
    [ch, credit, how](caf::event_based_actor* self) mutable -> caf::behavior {
      return {
        [=](int) mutable {
          if (how == death::killed)
            self->send_exit(self, caf::exit_reason::kill);
          ch.subscribe(self, credit);
          if (how == death::quits)
            self->quit(caf::exit_reason::user_shutdown);
        },
        [](weave::channel_batch<int>&) {
          // Never reached: the actor is gone first.
        },
      };
    });
}

/// `n` items queued, a subscriber with `credit` dies before reading: a
/// thread then finds every item, in order, and the end.
void check_dead_subscriber_returns_items(death how, int n, size_t credit) {
  weave::runtime rt;
  weave::channel<int> ch{rt, static_cast<size_t>(n)};
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.try_put(i) == channel_status::ok);
  auto doomed = spawn_doomed_subscriber(rt, ch, credit, how);
  caf::scoped_actor self{rt.system()};
  self->monitor(doomed);
  self->send(doomed, 1);
  // CAF empties a dead actor's mailbox before it sends down messages.
  REQUIRE(received_down(self));
  int taken = 0;
  bool in_order = true;
  while (auto r = ch.try_get()) {
    in_order = in_order && *r == taken;
    ++taken;
  }
  CHECK(taken == n);
  CHECK(in_order);
  // It was the only subscriber: the channel closes with its exit reason.
  CHECK(ch.get(weave::test::patience).status == channel_status::closed);
  CHECK(ch.close_reason()
        == (how == death::killed ? caf::exit_reason::kill
                                 : caf::exit_reason::user_shutdown));
  auto s = ch.stats();
  CHECK(s.lost == 0u);
  CHECK(s.requeued == std::min(credit, static_cast<size_t>(n)));
  CHECK(s.gets == static_cast<size_t>(n));
  CHECK(s.subscribers == 0u);
}

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

TEST_CASE("a consumer actor that dies mid-stream releases its producers") {
  weave::runtime rt;
  weave::channel<int> ch{rt, 4};
  constexpr int n = 100000;
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
  for (int i = 0; i < n; ++i) {
    last = ch.put(i); // would hang if the death did not release it
    if (last != channel_status::ok)
      break;
    ++accepted;
  }
  CHECK(last == channel_status::closed);
  CHECK(accepted < n);
  CHECK(ch.close_reason() == caf::exit_reason::user_shutdown);
  static_cast<void>(consumer);
}

TEST_CASE("a subscriber that quits before reading its batch: the items go "
          "back to the front of the channel") {
  check_dead_subscriber_returns_items(death::quits, 1000, 16);
}

TEST_CASE("a subscriber killed before reading its batch: the items go back "
          "to the front of the channel") {
  check_dead_subscriber_returns_items(death::killed, 1000, 16);
}

TEST_CASE("300,000 items behind a dead subscriber's unread batch: all are "
          "returned, without recursion") {
  check_dead_subscriber_returns_items(death::killed, 300000, 1);
}

TEST_CASE("a live subscriber receives a dead subscriber's unread batch: "
          "every item once, in order") {
  weave::runtime rt;
  constexpr int n = 1000;
  constexpr size_t live_credit = 64;
  weave::channel<int> ch{rt, n};
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.try_put(i) == channel_status::ok);
  weave::test::failures bad;
  weave::promise<int> live_count;
  auto live = rt.system().spawn(
    [ch, live_count, &bad](caf::event_based_actor* self) mutable
    -> caf::behavior {
      auto next = std::make_shared<int>(0);
      return {
        [=](int) mutable { ch.subscribe(self, live_credit); },
        [=, &bad](weave::channel_batch<int>& b) {
          for (int x : b.items())
            bad.check(x == (*next)++, "out of order or duplicated");
        },
        [=](weave::channel_closed&) mutable {
          live_count.set_value(*next);
          self->quit();
        },
      };
    });
  // The doomed one takes every item in one batch, has the live one
  // subscribe (awaiting that, it reads nothing else), then quits.
  auto doomed = rt.system().spawn(
    [ch, live](caf::event_based_actor* self) mutable -> caf::behavior {
      return {
        [=](int) mutable {
          ch.subscribe(self, n);
          self->request(live, caf::infinite, 1).await([=] {
            self->quit(caf::exit_reason::user_shutdown);
          });
        },
        [](weave::channel_batch<int>&) {},
      };
    });
  caf::scoped_actor self{rt.system()};
  self->monitor(doomed);
  self->send(doomed, 1);
  REQUIRE(received_down(self));
  ch.close(); // the live subscriber still gets what is queued, then the end
  auto f = live_count.get_future();
  REQUIRE(f.wait_for(weave::test::patience));
  CHECK(f.get() == n);
  CHECK(bad.messages() == "");
  auto s = ch.stats();
  CHECK(s.lost == 0u);
  CHECK(s.requeued == static_cast<size_t>(n));
  CHECK(s.gets == static_cast<size_t>(n));
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

TEST_CASE("a loop stopped with a batch unread: the items go back to the "
          "channel and the consume future fails with shut_down") {
  weave::runtime rt;
  weave::loop lp{rt, "consumer-loop"};
  constexpr int n = 100;
  constexpr size_t credit = 4;
  weave::channel<int> ch{rt, n};
  auto consumed = lp.submit([&ch](weave::loop_context& cx) {
    return ch.consume(cx, [](int&) {}, credit);
  });
  // Keep the loop busy while it is stopped and then sent its first batch,
  // so that the batch is still in its mailbox when it ends.
  latch busy{1};
  latch gate{1};
  lp.post([&] {
    busy.count_down();
    gate.wait();
  });
  REQUIRE(busy.wait());
  REQUIRE(ch.stats().subscribers == 1u);
  lp.stop();
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.put(i) == channel_status::ok);
  gate.count_down();
  lp.join();
  CHECK(outcome(consumed.get_result()) == "shut_down");
  int taken = 0;
  bool in_order = true;
  while (auto r = ch.try_get()) {
    in_order = in_order && *r == taken;
    ++taken;
  }
  CHECK(taken == n);
  CHECK(in_order);
  CHECK(ch.stats().lost == 0u);
}

TEST_CASE("stopping a loop that consumes a channel: a continuation of the "
          "consume future may call into the channel") {
  weave::runtime rt;
  weave::loop lp{rt, "consumer-loop"};
  weave::channel<int> ch{rt, small_capacity};
  latch first{1};
  weave::promise<std::string> verdict;
  lp.submit([&ch, &first, verdict](weave::loop_context& cx) mutable {
    ch.consume(cx, [&first](int&) { first.count_down(); })
      .then([ch, verdict](weave::result<size_t> r) mutable {
        auto depth = ch.stats().depth; // locks the channel
        verdict.set_value(outcome(r) + " " + std::to_string(depth));
      });
  });
  REQUIRE(ch.put(1) == channel_status::ok);
  REQUIRE(first.wait());
  lp.stop();
  lp.join(); // hung when the continuation ran under the channel's locks
  CHECK(verdict.get_future().get() == "shut_down 0");
}
