// Channels under load: 10,000,000 items, 4 producer threads, consumers mixed
// (threads and actors): per-producer FIFO per consumer, the capacity bound,
// and no item lost or duplicated (promises 3 and 4).
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
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      for (long i = 0; i < items_per_producer; ++i)
        REQUIRE(ch.put(tag(p, i)) == weave::channel_status::ok);
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
  CHECK(count == producers * items_per_producer);
  CHECK(sum == expected_sum);
  CHECK(fifo);
  CHECK(s.high_water <= capacity);
  CHECK(s.lost == 0u);
}
