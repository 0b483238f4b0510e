// actors/channel_source + channel_sink: a thread -> actor -> actor -> thread
// pipeline loses and duplicates nothing, keeps order, and propagates
// backpressure; a stage that dies ends the pipeline instead of leaving it
// hanging.
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
using weave::test::eventually;

namespace {

constexpr size_t capacity = 16;
constexpr size_t window = 8;
constexpr long items = 200000;

/// The most items the pipeline may hold between the producer's put and the
/// consumer's get: a full input channel, the source's window of
/// unacknowledged requests, a full output channel.
constexpr long bound = static_cast<long>(2 * capacity + window);

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

TEST_CASE("a source whose destination dies with a request unanswered closes "
          "its input and quits") {
  weave::runtime rt;
  weave::channel<long> input{rt, capacity};
  // Takes the first item into a response promise, then quits without
  // answering it: no error reply ever comes from CAF for it.
  auto dest = rt.system().spawn([](caf::event_based_actor* self)
                                  -> caf::behavior {
    return {[=](long) {
      auto rp = self->make_response_promise();
      self->quit(caf::exit_reason::user_shutdown);
      return rp;
    }};
  });
  auto source = weave::actors::spawn_channel_source(rt, input, dest, 1);
  caf::scoped_actor self{rt.system()};
  self->monitor(source);
  channel_status last = channel_status::ok;
  for (long i = 0; i < items; ++i) {
    last = input.put(i, weave::test::patience); // times out if left hanging
    if (last != channel_status::ok)
      break;
  }
  CHECK(last == channel_status::closed);
  CHECK(input.close_reason() == caf::exit_reason::user_shutdown);
  caf::error reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(weave::test::patience) >> [] {});
  CHECK(reason == caf::exit_reason::user_shutdown);
}

TEST_CASE("a sink killed with requests waiting answers them with its exit "
          "reason and closes its channel") {
  weave::runtime rt;
  weave::channel<long> output{rt, 1}; // nobody reads it
  auto sink = weave::actors::spawn_channel_sink(rt, output);
  caf::scoped_actor self{rt.system()};
  std::string first;
  self->request(sink, weave::test::patience, 1L)
    .receive([&] { first = "ok"; },
             [&](caf::error& err) { first = caf::to_string(err); });
  CHECK(first == "ok");
  // The second item waits in the sink: the channel is full.
  std::string second;
  std::thread requester{[&] {
    caf::scoped_actor other{rt.system()};
    other->request(sink, weave::test::patience, 2L)
      .receive([&] { second = "ok"; },
               [&](caf::error& err) { second = caf::to_string(err); });
  }};
  REQUIRE(eventually([&] { return output.stats().waiting_writers == 1; }));
  caf::anon_send_exit(sink, caf::exit_reason::kill);
  requester.join(); // a request_timeout here means it was left hanging
  CHECK(second == caf::to_string(caf::make_error(caf::exit_reason::kill)));
  // Its consumers get what it accepted, then the end, and why.
  auto r = output.get(weave::test::patience);
  CHECK((r && *r == 1));
  CHECK(output.get(weave::test::patience).status == channel_status::closed);
  CHECK(output.close_reason() == caf::exit_reason::kill);
}
