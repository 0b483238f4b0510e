// asyncio.Queue: when both sides are asynchronous, an actor's mailbox is
// the queue. Part 1 sends 0..4 from a producer actor to a consumer actor.
// Part 2 puts a bounded channel between them and makes the consumer slow:
// the producer is told "full" and waits (without blocking its thread) until
// the channel tells it it may write again. Part 3 does the same with
// `send`, whose answer comes when the item is in the channel. Part 4 is a
// loop that consumes a channel with a future per item and never has more
// than 3 of them pending.
#include <atomic>
#include <functional>
#include <thread>

#include "examples/example.hpp"

namespace weave_examples {

namespace {

constexpr int items = 5;
constexpr int burst = 12;
constexpr size_t capacity = 2;

/// Tells the slow consumer it has finished working on a batch.
using worked_atom = caf::atom_constant<caf::atom("worked")>;

void mailbox_part(weave::runtime& rt) {
  weave::promise<void> done;
  auto consumer = rt.system().spawn([done](caf::event_based_actor* self) mutable
                                    -> caf::behavior {
    return {[=](int data) mutable {
      say("consumer: got ", data, " from its mailbox");
      if (data == items - 1) { // the producer said how many it sends
        done.set_value();
        self->quit();
      }
    }};
  });
  rt.system().spawn([consumer](caf::event_based_actor* self) {
    for (int i = 0; i < items; ++i) {
      say("producer: send ", i);
      self->send(consumer, i);
    }
  });
  done.get_future().get();
}

/// A slow consumer: it keeps each batch (and so its credit) while it
/// "works" for a while, using a timer instead of blocking its thread.
void spawn_slow_consumer(weave::runtime& rt, weave::channel<int> ch,
                         weave::promise<int> finished, const options& opts) {
  rt.system().spawn([ch, finished, opts](caf::event_based_actor* self) mutable {
    ch.subscribe(self, 1);
    auto total = std::make_shared<int>(0);
    self->become(
      [=](weave::channel_batch<int>& batch) {
        say("slow consumer: working on ", batch[0]);
        *total += batch[0];
        // The batch travels with the timer message; its credit returns to
        // the channel when that message is done with, 200 ms from now.
        self->delayed_send(self, opts.scaled(std::chrono::milliseconds{200}),
                           worked_atom::value, batch);
      },
      [](worked_atom, weave::channel_batch<int>&) {},
      [=](weave::channel_closed&) mutable {
        finished.set_value(*total);
        self->quit();
      });
  });
}

void backpressure_part(weave::runtime& rt, const options& opts) {
  weave::channel<int> ch{rt, capacity};
  weave::promise<int> finished;
  spawn_slow_consumer(rt, ch, finished, opts);
  rt.system().spawn([ch](caf::event_based_actor* self) mutable {
    auto next = std::make_shared<int>(0);
    auto pump = [=]() mutable {
      while (*next < burst) {
        if (ch.offer(self, *next) == weave::channel_status::full) {
          say("fast producer: channel full at ", *next, ", waiting");
          return;
        }
        ++*next;
      }
      say("fast producer: all ", burst, " items offered");
      ch.close();
      self->quit();
    };
    self->become([=](weave::channel_writable&) mutable {
      say("fast producer: may write again");
      pump();
    });
    pump();
  });
  auto total = finished.get_future().get();
  say("slow consumer finished; sum ", total, ", queue high-water mark ",
      ch.stats().high_water, " (capacity ", capacity, ")");
}

/// The same producer with `send`: each item's answer sends the next one;
/// no `full`, no `channel_writable`.
void send_part(weave::runtime& rt, const options& opts) {
  weave::channel<int> ch{rt, capacity};
  weave::promise<int> finished;
  spawn_slow_consumer(rt, ch, finished, opts);
  rt.system().spawn([ch](caf::event_based_actor* self) mutable {
    auto produce = std::make_shared<std::function<void(int)>>();
    *produce = [=](int i) mutable {
      if (i == burst) {
        say("send producer: all ", burst, " items accepted");
        ch.close();
        *produce = nullptr; // ends the self-reference
        return;
      }
      ch.send(self, i).then([=] { (*produce)(i + 1); });
    };
    (*produce)(0);
  });
  auto total = finished.get_future().get();
  say("slow consumer finished; sum ", total, ", parked sends left ",
      ch.stats().parked_sends);
}

/// A loop consuming a channel with a future per item, at most `in_flight`
/// of them pending: `consume` takes the next item only when one finished.
void paced_part(weave::runtime& rt, const options& opts) {
  constexpr size_t in_flight = 3;
  constexpr int urls = 10;
  weave::channel<int> ch{rt, 16};
  weave::loop lp{rt, "crawler"};
  auto running = std::make_shared<std::atomic<int>>(0);
  auto most = std::make_shared<std::atomic<int>>(0);
  auto fetched = lp.submit([&](weave::loop_context& cx) {
    return ch.consume(
      cx,
      [&cx, running, most, opts](int& url) {
        auto now = ++*running;
        if (now > *most)
          *most = now;
        say("crawler: fetching url ", url, " (", now, " in flight)");
        return cx.offload([running, opts] {
          std::this_thread::sleep_for(
            opts.scaled(std::chrono::milliseconds{50}));
          --*running;
        });
      },
      in_flight);
  });
  for (int i = 0; i < urls; ++i)
    ch.put(i);
  ch.close();
  auto n = fetched.get();
  say("crawler: ", n, " urls fetched; at most ", most->load(),
      " in flight, never more than ", in_flight, ": ",
      most->load() <= static_cast<int>(in_flight) ? "yes" : "NO");
}

} // namespace

void section_5_2(weave::runtime& rt, const options& opts) {
  section("5.2", "asyncio.Queue: an actor's mailbox; a bounded channel for "
                 "backpressure");
  mailbox_part(rt);
  backpressure_part(rt, opts);
  send_part(rt, opts);
  paced_part(rt, opts);
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::section_5_2)
