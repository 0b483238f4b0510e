// asyncio.Queue: when both sides are asynchronous, an actor's mailbox is
// the queue. Part 1 sends 0..4 from a producer actor to a consumer actor.
// Part 2 puts a bounded channel between them and makes the consumer slow:
// the producer is told "full" and waits (without blocking its thread) until
// the channel tells it it may write again.
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

void backpressure_part(weave::runtime& rt, const options& opts) {
  weave::channel<int> ch{rt, capacity};
  weave::promise<int> finished;
  // A slow consumer: it keeps each batch (and so its credit) while it
  // "works" for a while, using a timer instead of blocking its thread.
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

} // namespace

void section_5_2(weave::runtime& rt, const options& opts) {
  section("5.2", "asyncio.Queue: an actor's mailbox; a bounded channel for "
                 "backpressure");
  mailbox_part(rt);
  backpressure_part(rt, opts);
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::section_5_2)
