// The parts of weave that do not go through CAF — future/promise, the pool's
// job queue, a channel between plain threads — under contention. Tagged
// tsan_clean: `./bazelw test --config=tsan //tests:sync_core_test` runs it
// under ThreadSanitizer (CAF itself is not instrumented in Debian's build).
#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/channel.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/job_queue.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int threads = 4;
constexpr int per_thread = 20000;
/// One thread is started per race: fewer of them, so that the case fits
/// its watchdog under ASan on a loaded 2-core machine (it took 45 s there).
constexpr int races = 5000;

/// A job that bumps a counter when run and remembers if it was dropped.
class counting_job final : public weave::internal::counted_job {
public:
  explicit counting_job(std::atomic<int>& ran) : ran_(ran) {
  }
  bool run() noexcept override {
    ++ran_;
    mark_finished();
    return true;
  }
  bool drop(caf::error) noexcept override {
    dropped = true;
    return true;
  }
  bool dropped = false;

private:
  std::atomic<int>& ran_;
};

/// `threads` producers, each putting its `per_thread` numbers
/// t * per_thread + i in order; a failed put is recorded in `bad`.
std::vector<std::thread> start_producers(weave::channel<long>& ch,
                                         weave::test::failures& bad) {
  std::vector<std::thread> producers;
  for (int t = 0; t < threads; ++t)
    producers.emplace_back([&ch, &bad, t] {
      for (long i = 0; i < per_thread; ++i)
        if (!bad.check(ch.put(long{t} * per_thread + i)
                         == weave::channel_status::ok,
                       "a put failed"))
          return;
    });
  return producers;
}

} // namespace

TEST_CASE("promises set from many threads: each future completes once") {
  std::vector<weave::promise<int>> ps(threads * per_thread);
  std::vector<weave::future<int>> fs;
  std::atomic<int> callbacks{0};
  std::atomic<int> second_set_won{0};
  for (auto& p : ps)
    fs.push_back(p.get_future().then([&](weave::result<int> r) {
      ++callbacks;
      return *r;
    }));
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        auto& p = ps[t * per_thread + i];
        p.set_value(i);
        if (p.set_value(-1)) // the first one wins
          ++second_set_won;
      }
    });
  long sum = 0;
  for (auto& f : fs)
    sum += f.get();
  for (auto& t : ts)
    t.join();
  CHECK(second_set_won.load() == 0);
  CHECK(callbacks.load() == threads * per_thread);
  CHECK(sum == long{threads} * per_thread * (per_thread - 1) / 2);
}

TEST_CASE("cancel races set_value: exactly one outcome per future") {
  int values = 0, cancels = 0;
  for (int i = 0; i < races; ++i) {
    weave::promise<int> p;
    auto f = p.get_future();
    std::thread setter{[&p] { p.set_value(1); }};
    bool cancelled = f.cancel();
    setter.join();
    auto r = f.get_result();
    if (r) {
      ++values;
      CHECK_FALSE(cancelled);
    } else {
      ++cancels;
      CHECK(cancelled);
    }
  }
  CHECK(values + cancels == races);
}

/// Pops as a pool worker does (the queue publishes the job in the worker's
/// slot, with a reference of the slot's own), then empties the slot.
weave::internal::job_ptr pop_job(weave::internal::job_queue& q,
                                 bool may_spin) {
  std::atomic<weave::internal::job*> slot{nullptr};
  auto j = q.pop(may_spin, slot);
  if (auto held = slot.exchange(nullptr))
    intrusive_ptr_release(held);
  return j;
}

TEST_CASE("the job queue hands every job to exactly one worker") {
  // As many shards as threads, whatever this machine's cores.
  weave::internal::job_queue q{threads, threads};
  REQUIRE(q.shards() == std::min<size_t>(threads, q.max_shards));
  std::atomic<int> ran{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < threads; ++w)
    workers.emplace_back([&, w] {
      while (auto j = pop_job(q, w == 0)) {
        if (j->try_start())
          j->run();
      }
    });
  std::atomic<int> refused{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < threads; ++t)
    producers.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) {
        bool want = false;
        if (!q.push(caf::make_counted<counting_job>(ran), want))
          ++refused;
      }
    });
  for (auto& t : producers)
    t.join();
  while (q.size() > 0)
    std::this_thread::yield();
  auto rest = q.close();
  for (auto& t : workers)
    t.join();
  CHECK(refused.load() == 0);
  CHECK(rest.empty());
  CHECK(ran.load() == threads * per_thread);
  bool want = false;
  CHECK_FALSE(q.push(caf::make_counted<counting_job>(ran), want));
}

/// A job that calls a function when run.
template <class F>
class fn_job final : public weave::internal::counted_job {
public:
  explicit fn_job(F f) : f_(std::move(f)) {
  }
  bool run() noexcept override {
    f_();
    mark_finished();
    return true;
  }
  bool drop(caf::error) noexcept override {
    return true;
  }

private:
  F f_;
};

template <class F>
weave::internal::job_ptr make_fn_job(F f) {
  return caf::make_counted<fn_job<F>>(std::move(f));
}

TEST_CASE("the sharded job queue starts each submitter's jobs in the order "
          "it submitted them") {
  constexpr int submitters = 24; // more than shards: some share one
  constexpr int per_submitter = 2000;
  weave::internal::job_queue q{16, 16};
  REQUIRE(q.shards() == 16u);
  // One worker: the order it takes jobs in is the order they start in.
  std::vector<std::pair<int, int>> taken; // worker thread only until joined
  std::thread worker{[&] {
    while (auto j = pop_job(q, false))
      if (j->try_start())
        j->run();
  }};
  weave::test::latch all_taken{size_t{submitters} * per_submitter};
  std::vector<std::thread> producers;
  for (int t = 0; t < submitters; ++t)
    producers.emplace_back([&, t] {
      for (int i = 0; i < per_submitter; ++i) {
        bool want = false;
        q.push(make_fn_job([&taken, &all_taken, t, i] {
                 taken.emplace_back(t, i);
                 all_taken.count_down();
               }),
               want);
      }
    });
  for (auto& t : producers)
    t.join();
  REQUIRE(all_taken.wait());
  auto rest = q.close();
  worker.join();
  CHECK(rest.empty());
  REQUIRE(taken.size() == size_t{submitters} * per_submitter);
  std::vector<int> next(submitters, 0);
  bool fifo = true;
  for (auto& [t, i] : taken) {
    if (i != next[t])
      fifo = false;
    next[t] = i + 1;
  }
  CHECK(fifo);
}

TEST_CASE("jobs pushed with one key start in push order, whichever thread "
          "pushes them (an actor that moves between scheduler threads)") {
  constexpr uint64_t key = 7;
  constexpr int per_thread = 500;
  constexpr int threads_in_turn = 6;
  weave::internal::job_queue q{16, 16};
  std::vector<int> taken; // worker thread only until the latch
  weave::test::latch all_taken{size_t{threads_in_turn} * per_thread};
  // One thread after another, as an actor's handlers run on one scheduler
  // thread after another; each thread also pushes unkeyed jobs of its own.
  // Everything is queued before the worker starts, so the order it takes
  // jobs in is the queue's alone.
  for (int t = 0; t < threads_in_turn; ++t)
    std::thread{[&, t] {
      for (int i = 0; i < per_thread; ++i) {
        bool want = false;
        auto n = t * per_thread + i;
        q.push(make_fn_job([&taken, &all_taken, n] {
                 taken.push_back(n);
                 all_taken.count_down();
               }),
               want, key);
        q.push(make_fn_job([] {}), want);
      }
    }}.join();
  std::thread worker{[&] {
    while (auto j = pop_job(q, false))
      if (j->try_start())
        j->run();
  }};
  REQUIRE(all_taken.wait());
  q.close();
  worker.join();
  REQUIRE(taken.size() == size_t{threads_in_turn} * per_thread);
  bool in_order = true;
  for (size_t i = 0; i < taken.size(); ++i)
    if (taken[i] != static_cast<int>(i))
      in_order = false;
  CHECK(in_order);
}

TEST_CASE("the sharded job queue never loses a wake-up: a job pushed while "
          "every worker parks is taken") {
  constexpr int rounds = 20000;
  constexpr int workers = 3;
  weave::internal::job_queue q{16, 16};
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      while (auto j = pop_job(q, false)) // no spinning: every idle worker parks
        if (j->try_start())
          j->run();
    });
  // One job at a time: each is pushed by the worker running the one before,
  // while the other workers park.
  std::atomic<int> done{0};
  weave::test::latch all{1};
  std::function<void()> next = [&] {
    if (++done == rounds) {
      all.count_down();
      return;
    }
    bool want = false;
    q.push(make_fn_job(next), want);
  };
  bool want = false;
  q.push(make_fn_job(next), want);
  CHECK(all.wait());
  q.close();
  for (auto& t : pool)
    t.join();
  CHECK(done.load() == rounds);
}

TEST_CASE("a plain-thread channel: FIFO per producer, bounded, nothing lost") {
  constexpr size_t capacity = 16;
  weave::channel<long> ch{capacity};
  weave::test::failures bad;
  auto producers = start_producers(ch, bad);
  std::vector<long> last(threads, -1);
  long count = 0;
  bool fifo = true;
  std::thread closer{[&] {
    for (auto& t : producers)
      t.join();
    ch.close();
  }};
  while (auto r = ch.get(weave::test::patience)) {
    auto t = *r / per_thread;
    if (*r <= last[t])
      fifo = false;
    last[t] = *r;
    ++count;
  }
  closer.join();
  CHECK(bad.messages() == "");
  CHECK(fifo);
  CHECK(count == long{threads} * per_thread);
  CHECK(ch.stats().high_water <= capacity);
}

TEST_CASE("several thread consumers (get, get with timeout, try_get): every "
          "item exactly once, FIFO per producer as each consumer sees it") {
  // The channel's queue has a producer half and a consumer half; a consumer
  // that waits must also see items another consumer moved over.
  constexpr size_t capacity = 8;
  constexpr int consumers = 3;
  weave::channel<long> ch{capacity};
  weave::test::failures bad;
  auto producers = start_producers(ch, bad);
  std::vector<std::vector<char>> seen(consumers,
                                      std::vector<char>(threads * per_thread));
  std::vector<int> fifo_breaks(consumers, 0);
  std::vector<std::thread> takers;
  for (int c = 0; c < consumers; ++c)
    takers.emplace_back([&, c] {
      std::vector<long> last(threads, -1);
      auto note = [&](long x) {
        auto t = x / per_thread;
        if (x <= last[t])
          ++fifo_breaks[c];
        last[t] = x;
        seen[c][x] = 1;
      };
      for (;;) {
        weave::channel_result<long> r;
        if (c == 0) {
          r = ch.get();
        } else if (c == 1) {
          r = ch.get(1ms);
          if (r.status == weave::channel_status::timeout)
            continue;
        } else {
          r = ch.try_get();
          if (r.status == weave::channel_status::empty) {
            std::this_thread::yield();
            continue;
          }
        }
        if (!r)
          break;
        note(*r);
      }
    });
  for (auto& t : producers)
    t.join();
  ch.close();
  for (auto& t : takers)
    t.join();
  size_t total = 0;
  bool once = true;
  for (long x = 0; x < long{threads} * per_thread; ++x) {
    int n = 0;
    for (int c = 0; c < consumers; ++c)
      n += seen[c][x];
    once = once && n == 1;
    total += n;
  }
  CHECK(bad.messages() == "");
  CHECK(once);
  CHECK(total == size_t{threads} * per_thread);
  for (int c = 0; c < consumers; ++c)
    CHECK(fifo_breaks[c] == 0);
  auto s = ch.stats();
  CHECK(s.high_water <= capacity);
  CHECK(s.gets == total);
  CHECK(s.depth == 0u);
}
