// channel<T>::consume when on_item throws, like an `async for` body that
// raises: the consume future fails with the exception's error, the items
// the loop had been handed but had not yet passed to on_item go back to the
// front of the channel, in order, and a later consumer gets them.
#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using weave::channel_status;

namespace {

constexpr int n = 10;
constexpr int fatal = 3;

/// The error a failed future carries, rendered; "value" if it succeeded.
template <class T>
std::string outcome(const weave::result<T>& r) {
  if (r)
    return "value";
  return weave::render(r.error());
}

/// A channel of `n` items and a loop consuming all of them in one batch;
/// `on_item` throws (via `fail`) at item `fatal`.
template <class T, class Make, class Value, class Fail>
void check_failed_consume(Make make, Value value_of, Fail fail,
                          const std::string& expected_error) {
  weave::runtime rt;
  weave::loop lp{rt, "consumer-loop"};
  weave::channel<T> ch{rt, n};
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.put(make(i)) == channel_status::ok);
  auto seen = std::make_shared<std::vector<int>>();
  auto consumed = lp.submit([&](weave::loop_context& cx) {
    return ch.consume(
      cx,
      [seen, value_of, fail](T& x) {
        auto v = value_of(x);
        seen->push_back(v);
        if (v == fatal)
          fail();
      },
      n);
  });
  REQUIRE(consumed.wait_for(weave::test::patience));
  CHECK(outcome(consumed.get_result()) == expected_error);
  CHECK(*seen == std::vector<int>{0, 1, 2, 3});
  // The rest is back at the front, in order; the channel is still open.
  auto s = ch.stats();
  CHECK(s.depth == static_cast<size_t>(n - fatal - 1));
  CHECK(s.requeued == static_cast<size_t>(n - fatal - 1));
  CHECK(s.lost == 0u);
  CHECK(s.subscribers == 0u);
  CHECK_FALSE(ch.closed());
  // A second consumer takes them, then what comes after.
  REQUIRE(ch.put(make(n)) == channel_status::ok);
  auto rest = std::make_shared<std::vector<int>>();
  auto again = lp.submit([&](weave::loop_context& cx) {
    return ch.consume(cx, [rest, value_of](T& x) {
      rest->push_back(value_of(x));
    });
  });
  ch.close();
  CHECK(again.get() == static_cast<size_t>(n - fatal));
  CHECK(*rest == std::vector<int>{4, 5, 6, 7, 8, 9, 10});
}

} // namespace

TEST_CASE("on_item throws in the middle of a batch: the consume future fails "
          "with the exception and the rest of the batch goes back to the "
          "channel, in order") {
  check_failed_consume<int>([](int i) { return i; }, [](int& x) { return x; },
                            [] { throw std::runtime_error("bad item"); },
                            "weave::job_failed: bad item");
}

TEST_CASE("on_item throws on a boxed item (a string): the rest goes back to "
          "the channel, in order") {
  check_failed_consume<std::string>(
    [](int i) { return std::to_string(i); },
    [](std::string& x) { return std::stoi(x); },
    [] { throw std::runtime_error("bad item"); },
    "weave::job_failed: bad item");
}

TEST_CASE("on_item throws a weave::exception: the consume future fails with "
          "its own error") {
  check_failed_consume<int>(
    [](int i) { return i; }, [](int& x) { return x; },
    [] {
      weave::raise(weave::make_error(weave::errc::invalid_argument, "nope"));
    },
    weave::render(weave::make_error(weave::errc::invalid_argument, "nope")));
}

TEST_CASE("subscribe, consume and offer need a channel created with a "
          "runtime") {
  weave::runtime rt;
  weave::channel<int> ch{4};
  weave::loop lp{rt, "consumer-loop"};
  auto consumed = lp.submit([&](weave::loop_context& cx) {
    return ch.consume(cx, [](int&) {});
  });
  REQUIRE(consumed.wait_for(weave::test::patience));
  auto r = consumed.get_result();
  REQUIRE_FALSE(r);
  CHECK(weave::is(r.error(), weave::errc::invalid_argument));
  CHECK(ch.stats().subscribers == 0u);
}
