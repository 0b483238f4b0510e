// channel<T>: close() racing a batch in flight to a subscribed actor. A
// producer thread puts a few items into a small channel and closes it at
// once, while the subscriber (credit 4) may still hold a batch; the
// subscriber must get every accepted item and then `channel_closed`, exactly
// once — also when the producer's copy of the channel was the last one and
// dies right after `close()`, when the subscriber is slow to let go of its
// batches, and when another thread closes the channel while the producer is
// blocked on it being full.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::channel_status;
using weave::test::latch;

namespace {

constexpr int iterations = 2000;
constexpr size_t credit = 4;
constexpr int max_items = 10;
constexpr size_t min_capacity = 2;
constexpr size_t max_capacity = 4;
/// Spins of the slow subscriber per batch: long enough for the producer to
/// refill and close meanwhile.
constexpr int slow_spins = 20000;

/// What a subscriber saw; written by the actor, read by the test thread
/// after `ended` (or after its bounded wait failed).
struct seen {
  std::atomic<int> items{0};
  std::atomic<int> ends{0};
  std::atomic<int> items_at_end{-1};
  std::atomic<int> batches_after_end{0};
  latch subscribed{1};
  latch ended{1};
};

/// Spawns a subscriber of `*box` (which it lets go of once subscribed, so
/// that it does not keep the channel alive) that counts what it gets. It
/// answers an `int` request with how many ends it saw.
caf::actor spawn_counter(weave::runtime& rt,
                         std::shared_ptr<weave::channel<int>> box,
                         std::shared_ptr<seen> st, bool slow) {
  return rt.system().spawn(
    [box, st, slow](caf::event_based_actor* self) mutable -> caf::behavior {
      box->subscribe(self, credit);
      box.reset();
      st->subscribed.count_down();
      return {
        [st, slow](weave::channel_batch<int>& b) {
          if (slow) {
            std::atomic<int> sink{0};
            for (int i = 0; i < slow_spins; ++i)
              sink.fetch_add(1, std::memory_order_relaxed);
          }
          if (st->ends.load() > 0)
            ++st->batches_after_end;
          st->items += static_cast<int>(b.items().size());
        },
        [st](weave::channel_closed&) {
          if (++st->ends == 1)
            st->items_at_end = st->items.load();
          st->ended.count_down();
        },
        [st](int) { return st->ends.load(); },
      };
    });
}

/// The ends `a` saw, asked after everything it was sent so far.
int ends_reported(caf::actor_system& sys, const caf::actor& a) {
  caf::scoped_actor self{sys};
  int ends = -1;
  self->request(a, caf::infinite, int{0})
    .receive([&](int n) { ends = n; }, [&](caf::error&) { ends = -2; });
  return ends;
}

enum class mode {
  /// The test thread keeps a copy of the channel.
  kept,
  /// The producer's copy is the last one; it dies right after `close()`.
  producer_owns,
};

/// Runs the race `iterations` times; returns "" or what went wrong first.
std::string run_race(mode m, bool slow) {
  weave::runtime rt;
  std::mt19937 rng{42};
  for (int it = 0; it < iterations; ++it) {
    auto k = std::uniform_int_distribution<int>{0, max_items}(rng);
    auto cap = std::uniform_int_distribution<size_t>{min_capacity,
                                                     max_capacity}(rng);
    auto ch = std::make_shared<weave::channel<int>>(rt, cap);
    auto st = std::make_shared<seen>();
    auto actor = spawn_counter(rt, ch, st, slow);
    if (!st->subscribed.wait())
      return "iteration " + std::to_string(it) + ": never subscribed";
    std::shared_ptr<weave::channel<int>> kept;
    if (m == mode::kept)
      kept = ch;
    std::atomic<int> accepted{0};
    std::atomic<bool> closed_now{false};
    std::thread producer{[c = std::move(ch), k, &accepted,
                          &closed_now]() mutable {
      for (int i = 0; i < k; ++i)
        if (c->put(i) == channel_status::ok)
          ++accepted;
      closed_now = c->close();
      c.reset(); // maybe the last reference
    }};
    producer.join();
    auto ended = st->ended.wait();
    auto why = [&] {
      return "iteration " + std::to_string(it) + " (k=" + std::to_string(k)
             + ", capacity=" + std::to_string(cap) + "): accepted "
             + std::to_string(accepted.load()) + ", received "
             + std::to_string(st->items.load()) + ", ends "
             + std::to_string(st->ends.load()) + ", close() returned "
             + (closed_now.load() ? "true" : "false");
    };
    if (!ended)
      return why() + ": channel_closed never came";
    auto ends = ends_reported(rt.system(), actor);
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    if (accepted.load() != k || !closed_now.load()
        || st->items_at_end.load() != k || ends != 1
        || st->batches_after_end.load() != 0)
      return why() + ", items at the end "
             + std::to_string(st->items_at_end.load()) + ", ends reported "
             + std::to_string(ends) + ", batches after the end "
             + std::to_string(st->batches_after_end.load());
  }
  return "";
}

/// A producer blocked on a full channel (a slow subscriber) while another
/// thread closes it: every accepted item reaches the subscriber, then the
/// end, once. Returns "" or what went wrong first.
std::string run_close_while_blocked() {
  weave::runtime rt;
  std::mt19937 rng{7};
  for (int it = 0; it < iterations / 4; ++it) {
    auto cap = std::uniform_int_distribution<size_t>{min_capacity,
                                                     max_capacity}(rng);
    auto ch = std::make_shared<weave::channel<int>>(rt, cap);
    auto st = std::make_shared<seen>();
    auto actor = spawn_counter(rt, ch, st, true);
    if (!st->subscribed.wait())
      return "iteration " + std::to_string(it) + ": never subscribed";
    std::atomic<int> accepted{0};
    // The producer puts until the channel refuses: it blocks on a full
    // channel (the subscriber is slow), and close() releases it.
    latch started{1};
    std::thread producer{[c = ch, &accepted, &started]() mutable {
      started.count_down();
      for (int i = 0;; ++i) {
        if (c->put(i) != channel_status::ok)
          break;
        ++accepted;
      }
      c.reset();
    }};
    std::thread closer{[c = std::move(ch), &started]() mutable {
      started.wait();
      while (c->stats().blocked_producers == 0 && !c->closed())
        std::this_thread::yield(); // close while it is blocked, if it is
      c->close();
      c.reset();
    }};
    producer.join();
    closer.join();
    auto ended = st->ended.wait();
    auto why = [&] {
      return "iteration " + std::to_string(it) + " (capacity="
             + std::to_string(cap) + "): accepted "
             + std::to_string(accepted.load()) + ", received "
             + std::to_string(st->items.load()) + ", ends "
             + std::to_string(st->ends.load());
    };
    if (!ended)
      return why() + ": channel_closed never came";
    auto ends = ends_reported(rt.system(), actor);
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    if (st->items_at_end.load() != accepted.load() || ends != 1
        || st->batches_after_end.load() != 0)
      return why() + ", items at the end "
             + std::to_string(st->items_at_end.load()) + ", ends reported "
             + std::to_string(ends);
  }
  return "";
}

} // namespace

TEST_CASE("close racing a batch in flight: the subscriber gets every item, "
          "then channel_closed once (the test keeps the channel)") {
  CHECK(run_race(mode::kept, false) == "");
}

TEST_CASE("close racing a batch in flight to a slow subscriber: every item, "
          "then channel_closed once") {
  CHECK(run_race(mode::kept, true) == "");
}

TEST_CASE("close racing a batch in flight when the producer's copy of the "
          "channel is the last: every item, then channel_closed once") {
  CHECK(run_race(mode::producer_owns, false) == "");
}

TEST_CASE("close racing a batch in flight to a slow subscriber when the "
          "producer's copy of the channel is the last") {
  CHECK(run_race(mode::producer_owns, true) == "");
}

TEST_CASE("close from another thread while the producer is blocked on a full "
          "channel: every accepted item, then channel_closed once") {
  CHECK(run_close_while_blocked() == "");
}
