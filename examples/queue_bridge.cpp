// queue.Queue between a thread and a coroutine, done right: a producer
// thread puts 0..4 into a bounded channel with a delay; a consumer actor
// receives each item as a message as it arrives (no pool thread parked in
// q.get per item) and ends when the channel is closed, not on a magic value.
#include <thread>

#include "examples/example.hpp"

namespace weave_examples {

void section_5_1(weave::runtime& rt, const options& opts) {
  section("5.1", "a channel between a producer thread and a consumer actor");
  constexpr size_t capacity = 8;
  constexpr size_t credit = 4;
  weave::channel<int> q{rt, capacity};
  weave::promise<int> consumed;
  rt.system().spawn([q, consumed](caf::event_based_actor* self) mutable {
    q.subscribe(self, credit);
    auto count = std::make_shared<int>(0);
    self->become(
      [count](weave::channel_batch<int>& batch) {
        for (int data : batch.items()) {
          say("consumer: got ", data);
          ++*count;
        }
      },
      [=](weave::channel_closed&) mutable {
        say("consumer: channel closed, done");
        consumed.set_value(*count);
        self->quit();
      });
  });
  std::thread producer{[&q, opts] {
    weave::set_this_thread_name("producer");
    for (int i = 0; i < 5; ++i) {
      say("producer: put ", i);
      q.put(i);
      std::this_thread::sleep_for(opts.scaled(std::chrono::seconds{1}));
    }
    q.close(); // end-of-stream instead of a sentinel value
  }};
  auto n = consumed.get_future().get();
  producer.join();
  say("consumer received ", n, " items");
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::section_5_1)
