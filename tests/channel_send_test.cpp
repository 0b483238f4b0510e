// channel<T>::send from event-based actors and loops: the answer comes once
// the item is in the channel, never inside send itself; items wait for room
// in order; closing refuses what waits; policies that never wait answer at
// once.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::channel_status;

namespace {

/// Sends `first`..`last-1` one after the other, each from the handler that
/// heard the previous one was accepted; `done` gets the count, or the error.
/// Records a failure if a handler ever runs inside `send`.
struct send_chain {
  caf::event_based_actor* self;
  weave::channel<int> ch;
  int next;
  int last;
  weave::promise<int> done;
  std::shared_ptr<bool> inside_send;
  weave::test::failures* bad;

  void operator()() {
    if (next == last) {
      done.set_value(last);
      return;
    }
    auto again = *this;
    ++again.next;
    *inside_send = true;
    auto d = done;
    auto flag = inside_send;
    auto b = bad;
    ch.send(self, next).then(
      [again, flag, b]() mutable {
        b->check(!*flag, "an answer ran inside send");
        again();
      },
      [d, flag, b](caf::error& err) mutable {
        b->check(!*flag, "an error ran inside send");
        d.set_error(err);
      });
    *inside_send = false;
  }
};

weave::future<int> spawn_sender(weave::runtime& rt, weave::channel<int> ch,
                                int first, int last,
                                weave::test::failures& bad) {
  weave::promise<int> done;
  auto fut = done.get_future();
  rt.system().spawn([=, &bad](caf::event_based_actor* self) mutable {
    send_chain{self, ch, first, last, done, std::make_shared<bool>(false),
               &bad}();
  });
  return fut;
}

/// An actor that sends `x` once and reports the outcome.
weave::future<void> send_once(weave::runtime& rt, weave::channel<std::string> ch,
                              std::string x) {
  weave::promise<void> done;
  auto fut = done.get_future();
  rt.system().spawn([=](caf::event_based_actor* self) mutable {
    ch.send(self, std::move(x))
      .then([done]() mutable { done.set_value(); },
            [done](caf::error& err) mutable { done.set_error(err); });
  });
  return fut;
}

/// An actor that sends 1 into `ch` (full: the send waits), then counts
/// `sent` down; `done` gets the answer. It keeps itself alive (as a
/// program's actors are kept alive by those that talk to them) until it
/// heard the answer, and holds no copy of `ch` after its first handler.
void spawn_waiting_sender(weave::runtime& rt, weave::channel<int> ch,
                          weave::promise<void> done,
                          weave::test::latch& sent) {
  rt.system().spawn([&sent, ch, d = std::move(done)](
                      caf::event_based_actor* self) mutable {
    auto me = caf::actor_cast<caf::actor>(self);
    ch.send(self, 1).then([d]() mutable { d.set_value(); },
                          [d, self, me](caf::error& err) mutable {
                            d.set_error(err);
                            self->quit();
                          });
    self->become([](int) {});
    sent.count_down();
  });
}

} // namespace

TEST_CASE("an actor sending 100000 items through a channel of 4 loses none, "
          "keeps their order and never answers inside send") {
  weave::runtime rt;
  constexpr int n = 100000;
  weave::channel<int> ch{rt, 4};
  weave::test::failures bad;
  auto sent = spawn_sender(rt, ch, 0, n, bad);
  size_t most_parked = 0;
  for (int i = 0; i < n; ++i) {
    auto r = ch.get();
    REQUIRE(r.status == channel_status::ok);
    REQUIRE(*r.value == i);
    if (i % 1000 == 0)
      most_parked = std::max(most_parked, ch.stats().parked_sends);
  }
  CHECK(sent.get() == n);
  CHECK(bad.messages() == "");
  auto s = ch.stats();
  CHECK(s.high_water <= 4u); // parked items never count against capacity
  CHECK(most_parked <= 1u);  // one actor chaining sends parks one at most
  CHECK(s.parked_sends == 0u);
  CHECK(s.puts == static_cast<size_t>(n));
}

TEST_CASE("two sending actors into a subscribed actor: every item once, each "
          "sender's in order") {
  weave::runtime rt;
  constexpr int per_sender = 20000;
  weave::channel<int> ch{rt, 2};
  weave::test::failures bad;
  weave::promise<std::vector<int>> got;
  rt.system().spawn([ch, got, &bad](caf::event_based_actor* self) mutable {
    ch.subscribe(self, 3);
    auto seen = std::make_shared<std::vector<int>>();
    auto last = std::make_shared<std::vector<int>>(2, -1);
    self->become(
      [=, &bad](weave::channel_batch<int>& b) {
        for (int x : b.items()) {
          auto who = x >= per_sender ? 1 : 0;
          bad.check(x > (*last)[who], "a sender's items out of order");
          (*last)[who] = x;
          seen->push_back(x);
        }
      },
      [=](weave::channel_closed&) mutable {
        got.set_value(std::move(*seen));
        self->quit();
      });
  });
  auto a = spawn_sender(rt, ch, 0, per_sender, bad);
  auto b = spawn_sender(rt, ch, per_sender, 2 * per_sender, bad);
  CHECK(a.get() == per_sender);
  CHECK(b.get() == 2 * per_sender);
  ch.close();
  auto seen = got.get_future().get();
  CHECK(seen.size() == static_cast<size_t>(2 * per_sender));
  std::vector<bool> once(2 * per_sender, false);
  for (int x : seen) {
    CHECK_FALSE(once[x]);
    once[x] = true;
  }
  CHECK(bad.messages() == "");
}

TEST_CASE("closing a channel refuses every waiting send with closed and "
          "destroys its item") {
  weave::runtime rt;
  weave::channel<std::shared_ptr<int>> ch{rt, 1};
  REQUIRE(ch.put(std::make_shared<int>(0)) == channel_status::ok); // full
  auto item = std::make_shared<int>(1);
  std::weak_ptr<int> watch = item;
  weave::promise<void> done;
  auto parked = weave::test::latch{1};
  rt.system().spawn([&, ch, done](caf::event_based_actor* self) mutable {
    ch.send(self, std::move(item))
      .then([done]() mutable { done.set_value(); },
            [done](caf::error& err) mutable { done.set_error(err); });
    parked.count_down();
  });
  REQUIRE(parked.wait());
  CHECK(ch.stats().parked_sends == 1u);
  CHECK(ch.close());
  auto r = done.get_future().get_result();
  REQUIRE_FALSE(r);
  CHECK(weave::is(r.error(), weave::errc::closed));
  CHECK(watch.expired()); // not kept, not leaked
  CHECK(ch.stats().parked_sends == 0u);
  CHECK(ch.stats().depth == 1u); // the queued item is still there
}

TEST_CASE("a send to a closed channel is answered with closed and keeps its "
          "item out") {
  weave::runtime rt;
  weave::channel<std::string> ch{rt, 4};
  ch.close();
  auto r = send_once(rt, ch, "late").get_result();
  REQUIRE_FALSE(r);
  CHECK(weave::is(r.error(), weave::errc::closed));
  CHECK(ch.stats().puts == 0u);
}

TEST_CASE("policies that never wait answer send at once: fail and "
          "drop_newest with full, drop_oldest accepts") {
  weave::runtime rt;
  SUBCASE("fail") {
    weave::channel<std::string> ch{rt, 1, weave::overflow::fail};
    REQUIRE(ch.put("a") == channel_status::ok);
    auto r = send_once(rt, ch, "b").get_result();
    REQUIRE_FALSE(r);
    CHECK(weave::is(r.error(), weave::errc::full));
    CHECK(weave::render(r.error()).find("policy is fail") != std::string::npos);
    CHECK(ch.stats().refused == 1u);
  }
  SUBCASE("drop_newest") {
    weave::channel<std::string> ch{rt, 1, weave::overflow::drop_newest};
    REQUIRE(ch.put("a") == channel_status::ok);
    auto r = send_once(rt, ch, "b").get_result();
    REQUIRE_FALSE(r);
    CHECK(weave::is(r.error(), weave::errc::full));
    CHECK(ch.stats().drops == 1u);
  }
  SUBCASE("drop_oldest") {
    weave::channel<std::string> ch{rt, 1, weave::overflow::drop_oldest};
    REQUIRE(ch.put("a") == channel_status::ok);
    CHECK(static_cast<bool>(send_once(rt, ch, "b").get_result()));
    CHECK(*ch.get().value == "b");
  }
}

TEST_CASE("a loop sends 10000 items one after the other with send(cx, x)") {
  weave::runtime rt;
  constexpr int n = 10000;
  weave::channel<int> ch{rt, 3};
  weave::loop lp{rt, "sender"};
  auto sent = lp.submit([ch](weave::loop_context& cx) mutable {
    weave::promise<int> done;
    auto fut = done.get_future();
    auto next = std::make_shared<std::function<void(int)>>();
    *next = [&cx, ch, done, next, n](int i) mutable {
      if (i == n) {
        done.set_value(n);
        *next = nullptr; // breaks the cycle
        return;
      }
      ch.send(cx, i).then([next, i, done](weave::result<void> r) mutable {
        if (r)
          (*next)(i + 1);
        else
          done.set_error(r.error());
      });
    };
    (*next)(0);
    return fut;
  });
  for (int i = 0; i < n; ++i) {
    auto r = ch.get();
    REQUIRE(r.status == channel_status::ok);
    REQUIRE(*r.value == i);
  }
  CHECK(sent.get() == n);
  CHECK(ch.stats().high_water <= 3u);
}

TEST_CASE("a loop's send still waiting when the loop stops fails with "
          "shut_down; the item enters the channel when there is room") {
  weave::runtime rt;
  weave::channel<int> ch{rt, 1};
  REQUIRE(ch.put(0) == channel_status::ok);
  weave::loop lp{rt, "sender"};
  weave::test::latch sent{1};
  auto waiting = lp.submit([ch, &sent](weave::loop_context& cx) mutable {
    auto f = ch.send(cx, 1); // parks before it returns
    sent.count_down();
    return f;
  });
  REQUIRE(sent.wait());
  CHECK(ch.stats().parked_sends == 1u);
  lp.stop();
  auto r = waiting.get_result();
  REQUIRE_FALSE(r);
  CHECK(weave::is(r.error(), weave::errc::shut_down));
  CHECK(*ch.get().value == 0);
  CHECK(*ch.get().value == 1); // handed over, not lost
}

TEST_CASE("the runtime's shutdown answers a waiting send with closed") {
  weave::promise<void> done;
  auto outcome = done.get_future();
  {
    weave::runtime rt;
    weave::channel<int> ch{rt, 1};
    REQUIRE(ch.put(0) == channel_status::ok);
    auto parked = weave::test::latch{1};
    spawn_waiting_sender(rt, ch, std::move(done), parked);
    REQUIRE(parked.wait());
    CHECK(ch.stats().parked_sends == 1u);
  }
  auto r = outcome.get_result();
  REQUIRE_FALSE(r);
  CHECK(weave::is(r.error(), weave::errc::closed));
}

TEST_CASE("destroying a channel's last handle answers a waiting send with "
          "closed") {
  weave::runtime rt;
  weave::promise<void> done;
  auto outcome = done.get_future();
  auto parked = weave::test::latch{1};
  {
    weave::channel<int> ch{rt, 1};
    REQUIRE(ch.put(0) == channel_status::ok);
    spawn_waiting_sender(rt, ch, std::move(done), parked);
    REQUIRE(parked.wait());
    CHECK(ch.stats().parked_sends == 1u);
  } // the test's handle goes; the actor's copy went with its init function
  auto r = outcome.get_result();
  REQUIRE_FALSE(r);
  CHECK(weave::is(r.error(), weave::errc::closed));
}

TEST_CASE("send refuses a channel made without a runtime") {
  weave::runtime rt;
  weave::channel<int> ch{4};
  weave::promise<std::string> what;
  rt.system().spawn([ch, what](caf::event_based_actor* self) mutable {
    try {
      ch.send(self, 1);
      what.set_value("no error");
    } catch (const weave::exception& e) {
      what.set_value(e.what());
    }
  });
  CHECK(what.get_future().get().find("actors need a channel created with a "
                                     "runtime")
        != std::string::npos);
}
