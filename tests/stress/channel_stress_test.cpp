// Channels under load: 10,000,000 items, 4 producer threads, consumers mixed
// (threads and actors): per-producer FIFO per consumer, the capacity bound,
// and no item lost or duplicated, also while subscribers are killed.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

namespace {

constexpr int producers = 4;
constexpr long items_per_producer = 2500000; // 10,000,000 in all
constexpr size_t capacity = 1024;
constexpr size_t credit = 256;
constexpr int thread_consumers = 2;
constexpr int actor_consumers = 2;

/// Producer in the top byte, sequence number below.
constexpr long long tag(int producer, long seq) {
  return (static_cast<long long>(producer) << 40) | seq;
}

/// Checks per-producer order for one consumer and sums what it saw.
struct order_check {
  std::vector<long> next = std::vector<long>(producers, -1);
  long count = 0;
  // Unsigned: the checksum wraps around (defined), the values are large.
  unsigned long long sum = 0;
  bool fifo = true;

  void see(long long x) {
    auto p = static_cast<int>(x >> 40);
    auto seq = static_cast<long>(x & ((1LL << 40) - 1));
    if (seq <= next[p])
      fifo = false;
    next[p] = seq;
    ++count;
    sum += static_cast<unsigned long long>(x);
  }
};

} // namespace

TEST_CASE("10,000,000 items through one channel, mixed consumers") {
  weave::runtime rt;
  weave::channel<long long> ch{rt, capacity};
  std::vector<weave::future<order_check>> actor_results;
  for (int a = 0; a < actor_consumers; ++a) {
    weave::promise<order_check> done;
    actor_results.push_back(done.get_future());
    rt.system().spawn([ch, done](caf::event_based_actor* self) mutable {
      ch.subscribe(self, credit);
      auto check = std::make_shared<order_check>();
      self->become(
        [check](weave::channel_batch<long long>& batch) {
          for (auto x : batch.items())
            check->see(x);
        },
        [=](weave::channel_closed&) mutable {
          done.set_value(*check);
          self->quit();
        });
    });
  }
  std::vector<order_check> thread_results(thread_consumers);
  std::vector<std::thread> consumers;
  for (int c = 0; c < thread_consumers; ++c)
    consumers.emplace_back([&, c] {
      while (auto r = ch.get())
        thread_results[c].see(*r);
    });
  auto t0 = std::chrono::steady_clock::now();
  weave::test::failures bad;
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      for (long i = 0; i < items_per_producer; ++i)
        if (!bad.check(ch.put(tag(p, i)) == weave::channel_status::ok,
                       "a put failed"))
          return;
    });
  for (auto& th : threads)
    th.join();
  ch.close();
  for (auto& th : consumers)
    th.join();
  std::vector<order_check> all = thread_results;
  for (auto& f : actor_results)
    all.push_back(f.get());
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                            - t0)
                .count();
  long count = 0;
  unsigned long long sum = 0;
  bool fifo = true;
  for (auto& c : all) {
    count += c.count;
    sum += c.sum;
    fifo = fifo && c.fifo;
  }
  unsigned long long expected_sum = 0;
  for (int p = 0; p < producers; ++p)
    expected_sum += (static_cast<unsigned long long>(p) << 40)
                      * items_per_producer
                    + static_cast<unsigned long long>(items_per_producer)
                        * (items_per_producer - 1) / 2;
  auto s = ch.stats();
  std::printf("channel stress: %ld items in %.2fs (%.1f M items/s); "
              "threads took %ld + %ld, actors %ld + %ld in %zu batches; "
              "high-water %zu of %zu\n",
              count, secs, count / secs / 1e6, all[0].count, all[1].count,
              all[2].count, all[3].count, s.batches, s.high_water, capacity);
  CHECK(bad.messages() == "");
  CHECK(count == producers * items_per_producer);
  CHECK(sum == expected_sum);
  CHECK(fifo);
  CHECK(s.high_water <= capacity);
  CHECK(s.lost == 0u);
}

TEST_CASE("subscribers killed mid-stream lose nothing: every item is read "
          "exactly once") {
  // Two producers, two thread consumers, and a relay of subscribers: each
  // new one subscribes, reads a while, and is then killed — often with an
  // unread batch in its mailbox, which must come back to the channel.
  constexpr int relay_producers = 2;
  constexpr long relay_items = 250000; // per producer
  constexpr long total = relay_producers * relay_items;
  constexpr long read_before_kill = 5000;
  constexpr size_t relay_capacity = 256;
  constexpr size_t relay_credit = 64;
  weave::runtime rt;
  weave::channel<long> ch{rt, relay_capacity};
  std::vector<std::atomic<uint8_t>> seen(total);
  auto see = [&seen](long x) { seen[x].fetch_add(1); };
  weave::test::failures bad;
  std::atomic<bool> produced{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < relay_producers; ++p)
    threads.emplace_back([&, p] {
      for (long i = 0; i < relay_items; ++i)
        if (!bad.check(ch.put(p * relay_items + i)
                         == weave::channel_status::ok,
                       "a put failed"))
          return;
    });
  std::vector<std::thread> consumers;
  for (int c = 0; c < thread_consumers; ++c)
    consumers.emplace_back([&] {
      while (auto r = ch.get())
        see(*r);
    });
  auto spawn_reader = [&](std::shared_ptr<std::atomic<long>> read,
                          weave::promise<void> ended) {
    return rt.system().spawn([&, read, ended](caf::event_based_actor* self) {
      ch.subscribe(self, relay_credit);
      self->attach_functor([ended](const caf::error&) mutable {
        ended.set_value();
      });
      self->become(
        [&, read](weave::channel_batch<long>& b) {
          for (auto x : b.items())
            see(x);
          read->fetch_add(static_cast<long>(b.size()));
        },
        [self](weave::channel_closed&) { self->quit(); });
    });
  };
  caf::actor current;
  weave::future<void> current_ended;
  int relays = 0;
  auto wait_subscribers = [&](size_t n) {
    auto until = std::chrono::steady_clock::now() + weave::test::patience;
    while (ch.stats().subscribers != n)
      if (std::chrono::steady_clock::now() > until)
        return false;
      else
        std::this_thread::yield();
    return true;
  };
  std::thread joiner{[&] {
    for (auto& th : threads)
      th.join();
    produced = true;
  }};
  while (!produced.load()) {
    auto read = std::make_shared<std::atomic<long>>(0);
    weave::promise<void> ended;
    auto next_ended = ended.get_future();
    auto next = spawn_reader(read, ended);
    // Never zero subscribers: the channel would close.
    REQUIRE(wait_subscribers(current ? 2 : 1));
    if (current) {
      caf::anon_send_exit(current, caf::exit_reason::kill);
      REQUIRE(current_ended.wait_for(weave::test::patience));
      REQUIRE(wait_subscribers(1));
    }
    current = next;
    current_ended = next_ended;
    ++relays;
    auto until = std::chrono::steady_clock::now() + weave::test::patience;
    while (read->load() < read_before_kill && !produced.load()
           && std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
  }
  joiner.join();
  ch.close();
  for (auto& th : consumers)
    th.join();
  REQUIRE(current_ended.wait_for(weave::test::patience));
  long once = 0, twice = 0, never = 0;
  for (auto& x : seen) {
    auto n = x.load();
    once += n == 1;
    twice += n > 1;
    never += n == 0;
  }
  auto s = ch.stats();
  std::printf("relay: %d subscribers killed in turn, %zu items requeued\n",
              relays - 1, s.requeued);
  CHECK(bad.messages() == "");
  CHECK(never == 0);
  CHECK(twice == 0);
  CHECK(once == total);
  CHECK(s.lost == 0u);
  CHECK(s.gets == static_cast<size_t>(total));
}
