// channel<T> between plain threads: the capacity bound, blocked producers
// released as soon as there is room (or by close or their timeout),
// per-producer FIFO, no item lost or duplicated, refused items left with
// their callers, no user code under the channel's locks, and bad input. The
// actor side is in channel_actor_test.cpp and channel_dead_consumer_test.cpp.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::eventually;
using weave::channel_status;
using weave::test::latch;

namespace {

constexpr size_t small_capacity = 8;
constexpr int producers = 4;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/// Sanitizers make every put and get several times slower: a fifth of the
/// items keeps the case within the same time (the channel is full at times
/// all the same).
constexpr int items_per_producer = 50000;
#else
constexpr int items_per_producer = 250000;
#endif

/// A timeout far longer than any test may take.
constexpr auto long_timeout = std::chrono::seconds{10};

/// How soon a blocked call must return once it can: well below
/// `long_timeout`, and generous enough for ASan on a loaded 2-core machine.
constexpr auto prompt = std::chrono::seconds{3};

/// An item tagged with its producer and sequence number.
struct tagged {
  int producer;
  int seq;
};

/// The value of a get, or -1 if it failed.
int value_of(weave::channel_result<int>& r) {
  return r ? *r : -1;
}

/// Takes one item, waiting at most `patience`; -1 if none came.
int take(weave::channel<int>& ch) {
  auto r = ch.get(weave::test::patience);
  return value_of(r);
}

/// The error code a call throws, or "none".
template <class F>
std::string thrown_code(F fn) {
  try {
    fn();
  } catch (const weave::exception& e) {
    return weave::to_string(e.code());
  }
  return "none";
}

} // namespace

TEST_CASE("put and get between threads: values, statuses, close") {
  weave::runtime rt;
  weave::channel<int> ch{rt, 2};
  CHECK(ch.try_put(1) == channel_status::ok);
  CHECK(ch.put(2) == channel_status::ok);
  CHECK(ch.try_put(3) == channel_status::full);
  CHECK(ch.put(3, 10ms) == channel_status::timeout);
  auto a = ch.get();
  REQUIRE(a);
  CHECK(*a == 1);
  CHECK(*ch.try_get() == 2);
  CHECK(ch.try_get().status == channel_status::empty);
  CHECK(ch.get(10ms).status == channel_status::timeout);
  CHECK(ch.put(4) == channel_status::ok);
  CHECK(ch.close());
  CHECK_FALSE(ch.close()); // idempotent
  CHECK(ch.put(5) == channel_status::closed);
  CHECK(*ch.get() == 4); // drained after close
  CHECK(ch.get().status == channel_status::closed);
  auto s = ch.stats();
  CHECK(s.puts == 3u);
  CHECK(s.gets == 3u);
  CHECK(s.high_water == 2u);
}

TEST_CASE("a refused put leaves a move-only item with its caller") {
  weave::runtime rt;
  using item = std::unique_ptr<int>;
  weave::channel<item> ch{rt, 1};
  REQUIRE(ch.put(std::make_unique<int>(1)) == channel_status::ok);
  auto keep = std::make_unique<int>(2);
  CHECK(ch.try_put(std::move(keep)) == channel_status::full);
  REQUIRE(keep != nullptr);
  CHECK(ch.put(std::move(keep), 10ms) == channel_status::timeout);
  REQUIRE(keep != nullptr);
  CHECK(*keep == 2);
  weave::channel<item> failing{rt, 1, weave::overflow::fail};
  REQUIRE(failing.put(std::make_unique<int>(1)) == channel_status::ok);
  CHECK(failing.put(std::move(keep), 10ms) == channel_status::full);
  REQUIRE(keep != nullptr);
  ch.close();
  CHECK(ch.put(std::move(keep), 10ms) == channel_status::closed);
  CHECK(ch.try_put(std::move(keep)) == channel_status::closed);
  REQUIRE(keep != nullptr);
  CHECK(*keep == 2);
  // An accepted item is taken.
  weave::channel<item> open{rt, 1};
  CHECK(open.put(std::move(keep), 10ms) == channel_status::ok);
  CHECK(keep == nullptr);
  CHECK(**open.try_get() == 2);
}

TEST_CASE("capacity is never exceeded, FIFO holds per producer, nothing is "
          "lost or duplicated") {
  weave::runtime rt;
  weave::channel<tagged> ch{rt, small_capacity};
  weave::test::failures bad;
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      for (int i = 0; i < items_per_producer; ++i)
        if (!bad.check(ch.put(tagged{p, i}) == channel_status::ok,
                       "a put failed"))
          return;
    });
  std::vector<int> next(producers, 0);
  long count = 0;
  bool fifo = true;
  while (count < long{producers} * items_per_producer) {
    auto r = ch.get(weave::test::patience);
    REQUIRE(r);
    if (r->seq != next[r->producer])
      fifo = false;
    next[r->producer] = r->seq + 1;
    ++count;
  }
  for (auto& t : threads)
    t.join();
  CHECK(bad.messages() == "");
  CHECK(fifo);
  for (int p = 0; p < producers; ++p)
    CHECK(next[p] == items_per_producer);
  auto s = ch.stats();
  CHECK(s.high_water <= small_capacity);
  CHECK(s.high_water == small_capacity); // it was full at times
  CHECK(s.puts == static_cast<size_t>(count));
  CHECK(ch.try_get().status == channel_status::empty);
}

TEST_CASE("close releases every blocked producer and consumer") {
  weave::runtime rt;
  weave::channel<int> full{rt, 1};
  weave::channel<int> empty{rt, 1};
  REQUIRE(full.put(0) == channel_status::ok);
  constexpr size_t waiters = 3;
  std::atomic<size_t> released_closed{0};
  std::vector<std::thread> threads;
  for (size_t i = 0; i < waiters; ++i) {
    threads.emplace_back([&] {
      if (full.put(1) == channel_status::closed)
        ++released_closed;
    });
    threads.emplace_back([&] {
      if (empty.get().status == channel_status::closed)
        ++released_closed;
    });
  }
  // Every one of them is blocked inside the channel before it closes.
  REQUIRE(eventually([&] {
    return full.stats().blocked_producers == waiters
           && empty.stats().blocked_consumers == waiters;
  }));
  CHECK(released_closed.load() == 0u);
  full.close();
  empty.close();
  for (auto& t : threads)
    t.join();
  CHECK(released_closed.load() == 2 * waiters);
  CHECK(full.stats().blocked_producers == 0u);
  CHECK(empty.stats().blocked_consumers == 0u);
}

TEST_CASE("overflow policies behave as documented and count what they "
          "discard or refuse") {
  weave::runtime rt;
  SUBCASE("drop_newest") {
    weave::channel<int> ch{rt, 2, weave::overflow::drop_newest};
    CHECK(ch.put(1) == channel_status::ok);
    CHECK(ch.put(2) == channel_status::ok);
    CHECK(ch.put(3) == channel_status::dropped);
    CHECK(*ch.get() == 1);
    CHECK(*ch.get() == 2);
    CHECK(ch.stats().drops == 1u);
    CHECK(ch.stats().refused == 0u);
  }
  SUBCASE("drop_oldest") {
    weave::channel<int> ch{rt, 2, weave::overflow::drop_oldest};
    for (int i = 1; i <= 5; ++i)
      CHECK(ch.put(i) == channel_status::ok);
    CHECK(*ch.get() == 4);
    CHECK(*ch.get() == 5);
    CHECK(ch.stats().drops == 3u);
  }
  SUBCASE("fail") {
    weave::channel<int> ch{rt, 1, weave::overflow::fail};
    CHECK(ch.put(1) == channel_status::ok);
    CHECK(ch.put(2) == channel_status::full); // does not block
    CHECK(ch.try_put(3) == channel_status::full);
    CHECK(ch.put(4, long_timeout) == channel_status::full);
    auto s = ch.stats();
    CHECK(s.refused == 3u); // the items stayed with their callers
    CHECK(s.drops == 0u);
    CHECK(s.puts == 1u);
    CHECK(*ch.get() == 1);
  }
}

TEST_CASE("an item evicted by drop_oldest is destroyed outside the channel's "
          "locks") {
  // Its destructor calls into the channel: that deadlocked under the lock.
  struct probe {
    weave::channel<probe>* ch = nullptr;
    int* destroyed = nullptr;
    probe(weave::channel<probe>* c, int* d) : ch(c), destroyed(d) {
    }
    probe(probe&& other) noexcept : ch(other.ch), destroyed(other.destroyed) {
      other.ch = nullptr;
    }
    probe(const probe&) = delete;
    ~probe() {
      if (ch != nullptr) {
        static_cast<void>(ch->stats());
        ++*destroyed;
      }
    }
  };
  weave::runtime rt;
  weave::channel<probe> ch{rt, 1, weave::overflow::drop_oldest};
  int destroyed = 0;
  REQUIRE(ch.put(probe{&ch, &destroyed}) == channel_status::ok);
  REQUIRE(ch.put(probe{&ch, &destroyed}) == channel_status::ok); // evicts
  CHECK(destroyed == 1);
  CHECK(ch.stats().drops == 1u);
  {
    auto last = ch.try_get();
    REQUIRE(last);
  }
  CHECK(destroyed == 2);
}

TEST_CASE("bad input: capacity 0, negative timeouts, blocking on a scheduler") {
  weave::runtime rt;
  CHECK(thrown_code([&] { weave::channel<int>(rt, 0); }) == "invalid_argument");
  weave::channel<int> ch{rt, 1};
  CHECK(thrown_code([&] { ch.put(1, -1ms); }) == "invalid_argument");
  CHECK(thrown_code([&] { ch.get(-1ms); }) == "invalid_argument");
  CHECK(thrown_code([&] { ch.put(1, std::chrono::hours::min()); })
        == "invalid_argument");
  CHECK(thrown_code([&] { ch.get(std::chrono::duration<double>{-1e300}); })
        == "invalid_argument");
  CHECK(ch.stats().puts == 0u);
  caf::scoped_actor test{rt.system()};
  auto probe = rt.system().spawn([ch]() mutable -> caf::behavior {
    return {[ch](int) mutable {
      return thrown_code([&] { ch.get(); });
    }};
  });
  std::string verdict;
  test->request(probe, weave::test::patience, 1)
    .receive([&](std::string& v) { verdict = v; }, [](caf::error&) {});
  CHECK(verdict == "would_deadlock");
  caf::anon_send_exit(probe, caf::exit_reason::user_shutdown);
}

TEST_CASE("a timeout of hours::max() or seconds::max() waits instead of "
          "timing out at once") {
  weave::runtime rt;
  weave::channel<int> ch{rt, 1};
  REQUIRE(ch.put(1) == channel_status::ok);
  channel_status put_status = channel_status::empty;
  std::thread producer{[&] { put_status = ch.put(2, std::chrono::hours::max()); }};
  // It waits: it is seen blocked inside the channel.
  CHECK(eventually([&] { return ch.stats().blocked_producers == 1; }));
  CHECK(take(ch) == 1);
  producer.join();
  CHECK(put_status == channel_status::ok);
  CHECK(take(ch) == 2);
  weave::channel_result<int> got;
  std::thread consumer{[&] { got = ch.get(std::chrono::seconds::max()); }};
  CHECK(eventually([&] { return ch.stats().blocked_consumers == 1; }));
  CHECK(ch.put(3) == channel_status::ok);
  consumer.join();
  CHECK(value_of(got) == 3);
  std::thread huge{[&] { got = ch.get(std::chrono::duration<double>{1e300}); }};
  CHECK(eventually([&] { return ch.stats().blocked_consumers == 1; }));
  CHECK(ch.put(4) == channel_status::ok);
  huge.join();
  CHECK(value_of(got) == 4);
}

TEST_CASE("a producer blocked on a full channel returns as soon as one slot "
          "is free") {
  weave::runtime rt;
  constexpr size_t capacity = 4;
  weave::channel<int> ch{rt, capacity};
  for (size_t i = 0; i < capacity; ++i)
    REQUIRE(ch.put(static_cast<int>(i)) == channel_status::ok);
  channel_status st = channel_status::empty;
  std::chrono::steady_clock::time_point returned;
  std::thread producer{[&] {
    st = ch.put(99, long_timeout);
    returned = std::chrono::steady_clock::now();
  }};
  REQUIRE(eventually([&] { return ch.stats().blocked_producers == 1; }));
  auto freed = std::chrono::steady_clock::now();
  CHECK(take(ch) == 0); // one slot, no more
  producer.join();
  CHECK(st == channel_status::ok);
  CHECK(returned - freed < prompt);
  CHECK(ch.stats().depth == capacity);
}

TEST_CASE("a consumer that takes one item and then waits for the producer "
          "does not deadlock") {
  // The producer fills the channel and blocks on one more item; the
  // consumer takes a single item, then waits until that put returned.
  weave::runtime rt;
  constexpr size_t capacity = 4;
  weave::channel<int> ch{rt, capacity};
  latch last_put_done{1};
  std::thread producer{[&] {
    for (size_t i = 0; i <= capacity; ++i)
      ch.put(static_cast<int>(i));
    last_put_done.count_down();
  }};
  REQUIRE(eventually([&] { return ch.stats().blocked_producers == 1; }));
  CHECK(take(ch) == 0);
  CHECK(last_put_done.wait());
  ch.close(); // releases the producer if it was left hanging
  producer.join();
  for (size_t i = 1; i <= capacity; ++i)
    CHECK(take(ch) == static_cast<int>(i));
}

TEST_CASE("several producers blocked on a full channel: each freed slot lets "
          "one through") {
  weave::runtime rt;
  constexpr size_t capacity = 2;
  constexpr size_t blocked = 3;
  weave::channel<int> ch{rt, capacity};
  REQUIRE(ch.put(0) == channel_status::ok);
  REQUIRE(ch.put(0) == channel_status::ok);
  std::atomic<size_t> done{0};
  std::vector<std::thread> threads;
  for (size_t i = 0; i < blocked; ++i)
    threads.emplace_back([&] {
      if (ch.put(1, long_timeout) == channel_status::ok)
        ++done;
    });
  REQUIRE(eventually([&] { return ch.stats().blocked_producers == blocked; }));
  for (size_t freed = 1; freed <= blocked; ++freed) {
    REQUIRE(ch.get());
    CHECK(eventually([&] { return done.load() == freed; }, prompt));
  }
  for (auto& t : threads)
    t.join();
  CHECK(ch.stats().depth == capacity);
  CHECK(ch.stats().high_water == capacity);
}

TEST_CASE("runtime shutdown closes channels and releases waiters") {
  channel_status st = channel_status::ok;
  weave::shutdown_report report;
  {
    weave::runtime rt;
    auto ch = std::make_unique<weave::channel<int>>(rt, 1);
    REQUIRE(ch->put(1) == channel_status::ok);
    std::thread producer{[&] { st = ch->put(2); }};
    REQUIRE(eventually([&] { return ch->stats().blocked_producers == 1; }));
    report = rt.shutdown(weave::test::patience);
    producer.join();
    CHECK(ch->closed());
  }
  CHECK(st == channel_status::closed);
  CHECK(report.channels_closed == 1u);
}

TEST_CASE("an empty channel_batch (default-constructed) has size 0 and "
          "refuses items() with invalid_argument") {
  weave::channel_batch<std::string> empty;
  CHECK(empty.size() == 0u);
  bool refused = false;
  try {
    empty.items();
  } catch (const weave::exception& e) {
    refused = weave::is(e.error(), weave::errc::invalid_argument);
  }
  CHECK(refused);
}
