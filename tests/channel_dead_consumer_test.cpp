// channel<T> when a consumer dies: an actor, or a loop that stops. Nothing is
// lost (the items it never read go back to the front of the channel, in
// order), nothing hangs (producers are released; a consume future fails with
// shut_down), and no user code runs under the channel's locks meanwhile.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::on_destroy;
using weave::channel_status;
using weave::test::latch;

namespace {

constexpr size_t small_capacity = 8;

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

TEST_CASE("stopping a loop that consumes a channel: the item handler is "
          "destroyed outside the channel's locks") {
  weave::runtime rt;
  weave::channel<int> ch{rt, small_capacity};
  latch first{1};
  std::atomic<int> destroyed{0};
  {
    weave::loop lp{rt, "consumer-loop"};
    lp.submit([&](weave::loop_context& cx) {
      // The handler owns something whose destructor calls into the channel.
      auto guard = std::make_shared<on_destroy>([&] {
        static_cast<void>(ch.stats());
        ++destroyed;
      });
      ch.consume(cx, [&first, guard](int&) { first.count_down(); });
    });
    REQUIRE(ch.put(1) == channel_status::ok);
    REQUIRE(first.wait());
    lp.stop();
    lp.join(); // hung when the handler died under the channel's locks
  }
  CHECK(destroyed.load() == 1);
}
