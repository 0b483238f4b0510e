// actors/channel_source + channel_sink: a thread -> actor -> actor -> thread
// pipeline loses and duplicates nothing, keeps order, and propagates
// backpressure (promises 1, 3, 4).
#include <doctest/doctest.h>

#include <thread>

#include "actors/channel_sink.hpp"
#include "actors/channel_source.hpp"
#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using weave::channel_status;

namespace {

constexpr size_t capacity = 16;
constexpr size_t window = 8;
constexpr long items = 200000;

} // namespace

TEST_CASE("thread -> source -> stage -> sink -> thread: every item, in order") {
  weave::runtime rt;
  weave::channel<long> input{rt, capacity};
  weave::channel<long> output{rt, capacity};
  auto sink = weave::actors::spawn_channel_sink(rt, output);
  auto stage = rt.system().spawn(
    [sink](caf::event_based_actor* self) -> caf::behavior {
      return {
        [=](long x) { return self->delegate(sink, x * 2); },
        [=](weave::channel_closed& end) {
          self->send(sink, end);
          self->quit();
        },
      };
    });
  auto source = weave::actors::spawn_channel_source(rt, input, stage, window);
  std::thread producer{[&] {
    for (long i = 0; i < items; ++i)
      REQUIRE(input.put(i) == channel_status::ok);
    input.close();
  }};
  long count = 0, sum = 0;
  bool ordered = true;
  while (auto r = output.get()) {
    if (*r != 2 * count)
      ordered = false;
    sum += *r;
    ++count;
  }
  producer.join();
  CHECK(ordered);
  CHECK(count == items);
  CHECK(sum == items * (items - 1));
  CHECK(input.stats().high_water <= capacity);
  CHECK(output.stats().high_water <= capacity);
  CHECK(output.closed());
  static_cast<void>(source);
}

TEST_CASE("a stalled consumer thread holds back the whole pipeline") {
  weave::runtime rt;
  weave::channel<long> input{rt, capacity};
  weave::channel<long> output{rt, capacity};
  auto sink = weave::actors::spawn_channel_sink(rt, output);
  auto source = weave::actors::spawn_channel_source(rt, input, sink, window);
  std::atomic<long> accepted{0};
  std::thread producer{[&] {
    for (long i = 0; i < items; ++i) {
      if (input.put(i) != channel_status::ok)
        return;
      ++accepted;
    }
  }};
  // Nobody reads `output`: the producer must stop after filling the output
  // channel, the source's window and the input channel, and stay there.
  const long bound = static_cast<long>(2 * capacity + window + 1);
  while (input.stats().depth < capacity || output.stats().depth < capacity)
    std::this_thread::yield();
  CHECK(accepted.load() <= bound);
  CHECK(output.stats().high_water == capacity);
  // Draining the output lets everything through.
  long count = 0;
  while (count < items) {
    auto r = output.get();
    REQUIRE(r);
    ++count;
  }
  producer.join();
  CHECK(accepted.load() == items);
  input.close();
  static_cast<void>(source);
}
