// actors/channel_source + channel_sink: a thread -> actor -> actor -> thread
// pipeline loses and duplicates nothing, keeps order, and propagates
// backpressure (promises 1, 3, 4); a stage that dies ends the pipeline
// instead of leaving it hanging.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
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

/// The most items the pipeline may hold between the producer's put and the
/// consumer's get: a full input channel, the source's window of
/// unacknowledged requests, a full output channel.
constexpr long bound = static_cast<long>(2 * capacity + window);

/// Waits until `pred` holds (it polls an exact condition); false after
/// `patience`.
template <class Pred>
bool eventually(Pred pred) {
  auto until = std::chrono::steady_clock::now() + weave::test::patience;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until)
      return false;
    std::this_thread::yield();
  }
  return true;
}

/// Drains `output` until it closes (or `limit` items), checking order and
/// — at every item — that the producer is never more than `bound` items
/// ahead. `accepted` counts the producer's successful puts (it lags them,
/// so the check can only err on the lenient side).
struct drain_result {
  long count = 0;
  long sum = 0;
  bool ordered = true;
  long max_ahead = 0;
};

drain_result drain(weave::channel<long>& output, std::atomic<long>& accepted,
                   long factor, long limit = items) {
  drain_result res;
  while (res.count < limit) {
    auto r = output.get(weave::test::patience);
    if (!r)
      break;
    if (*r != factor * res.count)
      res.ordered = false;
    res.sum += *r;
    ++res.count;
    res.max_ahead = std::max(res.max_ahead, accepted.load() - res.count);
  }
  return res;
}

} // namespace

TEST_CASE("thread -> source -> stage -> sink -> thread: every item, in "
          "order, never more than the pipeline's bound in flight") {
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
  weave::test::failures bad;
  std::atomic<long> accepted{0};
  std::thread producer{[&] {
    for (long i = 0; i < items; ++i) {
      if (!bad.check(input.put(i) == channel_status::ok, "a put failed"))
        break;
      ++accepted;
    }
    input.close();
  }};
  auto res = drain(output, accepted, 2);
  producer.join();
  CHECK(bad.messages() == "");
  CHECK(res.ordered);
  CHECK(res.count == items);
  CHECK(res.sum == items * (items - 1));
  CHECK(res.max_ahead <= bound);
  CHECK(output.get(weave::test::patience).status == channel_status::closed);
  // The bound held over the whole run, not just at the end.
  CHECK(input.stats().high_water <= capacity);
  CHECK(output.stats().high_water <= capacity);
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
  // Nobody reads `output`: the producer fills the output channel, the
  // source's window and the input channel, and then it is stuck in put.
  REQUIRE(eventually([&] {
    return output.stats().depth == capacity && input.stats().depth == capacity
           && input.stats().blocked_producers == 1;
  }));
  CHECK(accepted.load() <= bound);
  CHECK(output.stats().high_water == capacity);
  // Draining the output lets everything through, never more than the bound
  // ahead of the consumer.
  auto res = drain(output, accepted, 1);
  producer.join();
  CHECK(res.count == items);
  CHECK(res.ordered);
  CHECK(res.max_ahead <= bound);
  CHECK(accepted.load() == items);
  CHECK(input.stats().high_water <= capacity);
  CHECK(output.stats().high_water <= capacity);
  input.close();
  static_cast<void>(source);
}
