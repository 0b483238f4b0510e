// channel<T> and the runtime's shutdown: a channel may outlive its runtime
// (destroyed second), in every state, and by then it holds no reference into
// the destroyed actor system. A subscribed actor is released once it has
// been sent the end; one that never returns its batch is released before the
// actor system goes, and the batch's unread items are back in the channel.
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
using weave::test::eventually;
using weave::test::on_destroy;
using weave::channel_status;
using weave::test::latch;

namespace {

constexpr size_t small_capacity = 8;
constexpr size_t credit = 4;

/// The deadline of a shutdown that has to wait for an actor that never
/// ends: short, since waiting is not the point.
constexpr auto short_deadline = std::chrono::milliseconds{200};

/// Every item left in `ch`, taken without waiting.
std::vector<int> drain(weave::channel<int>& ch) {
  std::vector<int> xs;
  while (auto r = ch.try_get())
    xs.push_back(*r);
  return xs;
}

std::vector<int> iota(int from, int to) {
  std::vector<int> xs;
  for (int i = from; i < to; ++i)
    xs.push_back(i);
  return xs;
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

} // namespace

TEST_CASE("a subscriber that ignores the end is released at shutdown, and "
          "the channel outlives its runtime") {
  auto destroyed = std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<weave::channel<int>> ch;
  weave::shutdown_report report;
  {
    weave::runtime rt;
    ch = std::make_unique<weave::channel<int>>(rt, small_capacity);
    latch got{1};
    // It keeps a copy of the channel (a cycle through the channel's
    // reference to it) and stays idle after the end.
    rt.system().spawn([c = *ch, destroyed, &got](
                        caf::event_based_actor* self) mutable {
      auto marker = std::make_shared<on_destroy>([destroyed] {
        destroyed->store(true);
      });
      c.subscribe(self, credit);
      self->become(
        [marker, &got](weave::channel_batch<int>& b) {
          b.items();
          got.count_down();
        },
        [c](weave::channel_closed&) {
          // stays alive
        });
    });
    REQUIRE(ch->put(1) == channel_status::ok);
    REQUIRE(got.wait());
    report = rt.shutdown(short_deadline);
    // Released while the system was alive: nobody else kept it.
    CHECK(destroyed->load());
  }
  CHECK(report.actors_abandoned == 0u);
  CHECK(ch->closed());
  CHECK(ch->try_get().status == channel_status::closed);
  CHECK(ch->stats().subscribers == 0u);
  ch.reset(); // after the actor system: must not touch it
}

TEST_CASE("a subscriber that never returns its batch is released before the "
          "actor system ends; the batch's items go back to the channel") {
  constexpr int n = 10;
  auto destroyed = std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<weave::channel<int>> ch;
  {
    weave::runtime rt;
    ch = std::make_unique<weave::channel<int>>(rt, small_capacity + n);
    for (int i = 0; i < n; ++i)
      REQUIRE(ch->put(i) == channel_status::ok);
    latch got{1};
    // It keeps its first batch, unread, for ever: the channel never sees
    // the batch come back, so it never sends it the end.
    rt.system().spawn([c = *ch, destroyed, &got](
                        caf::event_based_actor* self) mutable {
      auto kept = std::make_shared<std::vector<weave::channel_batch<int>>>();
      auto marker = std::make_shared<on_destroy>([destroyed] {
        destroyed->store(true);
      });
      c.subscribe(self, credit);
      self->become([kept, marker, &got](weave::channel_batch<int>& b) {
        kept->push_back(b);
        got.count_down();
      });
    });
    REQUIRE(got.wait());
    rt.shutdown(short_deadline);
    CHECK(destroyed->load());
  }
  // The kept batch came back unread, to the front, in order.
  CHECK(drain(*ch) == iota(0, n));
  auto s = ch->stats();
  CHECK(s.lost == 0u);
  CHECK(s.requeued == credit);
  CHECK(s.subscribers == 0u);
  ch.reset();
}

TEST_CASE("a channel destroyed after its runtime: empty, with items queued, "
          "with a blocked producer or a blocked consumer") {
  std::unique_ptr<weave::channel<int>> empty;
  std::unique_ptr<weave::channel<int>> queued;
  std::unique_ptr<weave::channel<int>> full;
  std::unique_ptr<weave::channel<int>> starved;
  channel_status producer_status = channel_status::ok;
  channel_status consumer_status = channel_status::ok;
  std::thread producer;
  std::thread consumer;
  {
    weave::runtime rt;
    empty = std::make_unique<weave::channel<int>>(rt, small_capacity);
    queued = std::make_unique<weave::channel<int>>(rt, small_capacity);
    full = std::make_unique<weave::channel<int>>(rt, 1);
    starved = std::make_unique<weave::channel<int>>(rt, 1);
    for (int i = 0; i < 3; ++i)
      REQUIRE(queued->put(i) == channel_status::ok);
    REQUIRE(full->put(0) == channel_status::ok);
    producer = std::thread{[&, c = *full]() mutable {
      producer_status = c.put(1);
    }};
    consumer = std::thread{[&, c = *starved]() mutable {
      consumer_status = c.get().status;
    }};
    REQUIRE(eventually([&] { return full->stats().blocked_producers == 1; }));
    REQUIRE(
      eventually([&] { return starved->stats().blocked_consumers == 1; }));
  }
  producer.join();
  consumer.join();
  CHECK(producer_status == channel_status::closed);
  CHECK(consumer_status == channel_status::closed);
  CHECK(empty->try_get().status == channel_status::closed);
  CHECK(empty->try_put(1) == channel_status::closed);
  CHECK(drain(*queued) == iota(0, 3));
  CHECK(drain(*full) == iota(0, 1));
  empty.reset();
  queued.reset();
  full.reset();
  starved.reset();
}

TEST_CASE("a channel destroyed after its runtime: a waiting subscriber, a "
          "waiting loop consumer, an actor waiting to write") {
  std::unique_ptr<weave::channel<int>> subscribed;
  std::unique_ptr<weave::channel<int>> consumed;
  std::unique_ptr<weave::channel<int>> offered;
  weave::future<size_t> consume_done;
  auto subscriber_ended = std::make_shared<std::atomic<int>>(0);
  auto writer_told = std::make_shared<std::atomic<int>>(0);
  {
    weave::runtime rt;
    subscribed = std::make_unique<weave::channel<int>>(rt, small_capacity);
    consumed = std::make_unique<weave::channel<int>>(rt, small_capacity);
    offered = std::make_unique<weave::channel<int>>(rt, 1);
    rt.system().spawn([c = *subscribed, subscriber_ended](
                        caf::event_based_actor* self) mutable {
      c.subscribe(self, credit);
      self->become([](weave::channel_batch<int>&) {},
                   [self, subscriber_ended](weave::channel_closed&) {
                     ++*subscriber_ended;
                     self->quit();
                   });
    });
    weave::loop lp{rt, "consumer-loop"};
    consume_done = lp.submit([&](weave::loop_context& cx) {
      return consumed->consume(cx, [](int&) {});
    });
    REQUIRE(offered->put(0) == channel_status::ok);
    rt.system().spawn([c = *offered, writer_told](
                        caf::event_based_actor* self) mutable {
      if (c.offer(self, 1) != channel_status::full)
        return; // the test sees writer_told stay 0
      self->become([self, writer_told](weave::channel_writable&) {
        ++*writer_told;
        self->quit();
      });
    });
    REQUIRE(eventually([&] {
      return subscribed->stats().subscribers == 1
             && consumed->stats().subscribers == 1
             && offered->stats().waiting_writers == 1;
    }));
  }
  CHECK(subscriber_ended->load() == 1);
  CHECK(writer_told->load() == 1);
  CHECK(outcome(consume_done.get_result()) == "shut_down");
  for (auto* c : {subscribed.get(), consumed.get(), offered.get()}) {
    auto s = c->stats();
    CHECK(s.subscribers == 0u);
    CHECK(s.waiting_writers == 0u);
  }
  CHECK(drain(*offered) == iota(0, 1));
  subscribed.reset();
  consumed.reset();
  offered.reset();
}

TEST_CASE("a channel whose runtime is gone refuses subscribers with "
          "shut_down and offers with closed") {
  std::unique_ptr<weave::channel<int>> ch;
  {
    weave::runtime rt;
    ch = std::make_unique<weave::channel<int>>(rt, small_capacity);
  }
  weave::runtime other;
  weave::promise<std::string> verdict;
  other.system().spawn([c = *ch, verdict](caf::event_based_actor* self) mutable {
    std::string what = "offer: " + std::string{to_string(c.offer(self, 1))};
    try {
      c.subscribe(self, credit);
      what += ", subscribe: accepted";
    } catch (const weave::exception& e) {
      what += ", subscribe: " + std::string{weave::to_string(e.code())};
    }
    verdict.set_value(what);
  });
  auto f = verdict.get_future();
  REQUIRE(f.wait_for(weave::test::patience));
  CHECK(f.get() == "offer: closed, subscribe: shut_down");
  CHECK(ch->stats().subscribers == 0u);
  CHECK(ch->stats().waiting_writers == 0u);
}
