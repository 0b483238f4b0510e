// channel<T> with items whose special members are user code: no item
// destructor (of a copy-only item, or of a moved-from one) runs while the
// channel holds its locks, whichever way the item leaves (get, eviction, a
// batch to an actor, a loop consumer, a dead subscriber's batch); an item
// whose copy throws is never lost.
//
// Each item's destructor asks another thread to take the channel's locks
// (`stats()`) and waits for it, bounded: if the destroying thread holds
// them, that thread cannot get them in time.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::channel_status;
using weave::test::latch;

namespace {

constexpr size_t small_capacity = 4;
constexpr int n = 8;

/// Tells whether the thread destroying an item holds the channel's locks.
class lock_probe {
public:
  explicit lock_probe(weave::test::failures& bad) : bad_(bad) {
  }

  ~lock_probe() {
    join();
  }

  /// How to take the channel's locks (set once the channel exists).
  std::function<void()> touch;

  /// Called by an item's destructor.
  void check(const char* what) {
    if (!touch || found_.load())
      return;
    ++checks_;
    auto done = std::make_shared<latch>(1);
    std::thread t{[fn = touch, done] {
      fn();
      done->count_down();
    }};
    if (!done->wait(weave::test::patience)) {
      found_ = true;
      bad_.add(std::string{what} + " destroyed under the channel's lock");
    }
    std::unique_lock<std::mutex> guard{mtx_};
    threads_.push_back(std::move(t));
  }

  /// Stops probing and waits for every probing thread.
  void join() {
    touch = nullptr;
    std::unique_lock<std::mutex> guard{mtx_};
    for (auto& t : threads_)
      t.join();
    threads_.clear();
  }

  int checks() const {
    return checks_.load();
  }

private:
  weave::test::failures& bad_;
  std::atomic<bool> found_{false};
  std::atomic<int> checks_{0};
  std::mutex mtx_;
  std::vector<std::thread> threads_;
};

/// Copy-only: declaring the copy constructor leaves it without a move
/// constructor, so the channel can only copy it in and out.
struct copy_only {
  copy_only(int x, lock_probe* p) : value(x), probe(p) {
  }
  copy_only(const copy_only&) = default;
  copy_only& operator=(const copy_only&) = default;
  ~copy_only() {
    if (probe != nullptr)
      probe->check("a copy-only item");
  }
  int value;
  lock_probe* probe;
};

/// Movable; a moved-from one still probes when destroyed.
struct movable {
  movable(int x, lock_probe* p) : value(x), probe(p) {
  }
  movable(movable&& other) noexcept : value(other.value), probe(other.probe) {
    other.value = -1;
  }
  movable(const movable&) = delete;
  ~movable() {
    if (probe != nullptr)
      probe->check("a moved-from item");
  }
  int value;
  lock_probe* probe;
};

/// Copy-only, and its copy throws while `fail` is set.
struct fragile {
  explicit fragile(int x) : value(x) {
  }
  fragile(const fragile& other) : value(other.value) {
    if (fail.load())
      throw std::runtime_error("fragile copy");
  }
  int value;
  static std::atomic<bool> fail;
};

std::atomic<bool> fragile::fail{false};

/// Puts `n` items through a drop-oldest channel from threads, gets them
/// back: the values are right and no destructor ran under the locks.
template <class Item>
void check_thread_side(weave::test::failures& bad) {
  weave::runtime rt;
  lock_probe probe{bad};
  weave::channel<Item> ch{rt, small_capacity, weave::overflow::drop_oldest};
  probe.touch = [ch] { static_cast<void>(ch.stats()); };
  for (int i = 0; i < n; ++i) {
    Item x{i, &probe};
    REQUIRE(ch.put(std::move(x)) == channel_status::ok); // evicts from 4 on
  }
  std::vector<int> got;
  while (auto r = ch.try_get())
    got.push_back(r->value);
  CHECK(got == std::vector<int>{4, 5, 6, 7});
  probe.join();
  CHECK(bad.messages() == "");
}

} // namespace

TEST_CASE("copy-only items put, evicted and taken by threads are never "
          "destroyed under the channel's lock") {
  weave::test::failures bad;
  check_thread_side<copy_only>(bad);
}

TEST_CASE("moved-from items are never destroyed under the channel's lock") {
  weave::test::failures bad;
  check_thread_side<movable>(bad);
}

TEST_CASE("items batched to a subscriber, to a loop consumer, and returned "
          "by a dead subscriber are never destroyed under the channel's "
          "lock") {
  weave::test::failures bad;
  weave::runtime rt;
  lock_probe probe{bad};
  weave::channel<copy_only> ch{rt, n};
  probe.touch = [ch] { static_cast<void>(ch.stats()); };
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.put(copy_only{i, &probe}) == channel_status::ok);
  // A subscriber that dies before reading its batch of 3: they go back.
  auto doomed = rt.system().spawn([ch](caf::event_based_actor* self) mutable
                                  -> caf::behavior {
    return {
      [=](int) mutable {
        ch.subscribe(self, 3);
        self->quit(caf::exit_reason::user_shutdown);
      },
      [](weave::channel_batch<copy_only>&) {},
    };
  });
  caf::scoped_actor self{rt.system()};
  self->monitor(doomed);
  self->send(doomed, 1);
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; },
                caf::after(weave::test::patience) >> [] {});
  REQUIRE(down);
  REQUIRE(ch.stats().requeued == 3u);
  // The channel closed with its last subscriber; a loop takes everything,
  // the returned items first.
  auto seen = std::make_shared<std::vector<int>>();
  weave::loop lp{rt, "consumer-loop"};
  auto consumed = lp.submit([&ch, seen](weave::loop_context& cx) {
    return ch.consume(
      cx, [seen](copy_only& x) { seen->push_back(x.value); }, 2);
  });
  CHECK(consumed.get() == static_cast<size_t>(n));
  CHECK(*seen == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  probe.join();
  CHECK(probe.checks() > 0);
  CHECK(bad.messages() == "");
}

TEST_CASE("items batched to a subscriber actor are never destroyed under the "
          "channel's lock") {
  weave::test::failures bad;
  weave::runtime rt;
  lock_probe probe{bad};
  weave::channel<movable> ch{rt, n};
  probe.touch = [ch] { static_cast<void>(ch.stats()); };
  weave::promise<std::vector<int>> result;
  rt.system().spawn([ch, result](caf::event_based_actor* self) mutable {
    auto got = std::make_shared<std::vector<int>>();
    ch.subscribe(self, 3);
    self->become(
      [got](weave::channel_batch<movable>& b) {
        for (auto& x : b.items())
          got->push_back(x.value);
      },
      [self, got, result](weave::channel_closed&) mutable {
        result.set_value(*got);
        self->quit();
      });
  });
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.put(movable{i, &probe}) == channel_status::ok);
  ch.close();
  auto f = result.get_future();
  REQUIRE(f.wait_for(weave::test::patience));
  CHECK(f.get() == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  probe.join();
  CHECK(probe.checks() > 0);
  CHECK(bad.messages() == "");
}

TEST_CASE("a get whose item's copy throws leaves the item at the front") {
  weave::channel<fragile> ch{small_capacity};
  REQUIRE(ch.put(fragile{1}) == channel_status::ok);
  REQUIRE(ch.put(fragile{2}) == channel_status::ok);
  fragile::fail = true;
  CHECK_THROWS_AS(ch.try_get(), std::runtime_error);
  fragile::fail = false;
  auto r = ch.try_get();
  REQUIRE(r);
  CHECK(r->value == 1);
  CHECK(ch.try_get()->value == 2);
  CHECK(ch.stats().depth == 0u);
}

TEST_CASE("a put whose item's copy throws does not accept it") {
  weave::channel<fragile> ch{small_capacity};
  fragile x{1};
  fragile::fail = true;
  CHECK_THROWS_AS(ch.put(x), std::runtime_error);
  fragile::fail = false;
  CHECK(ch.stats().depth == 0u);
  CHECK(ch.stats().puts == 0u);
  REQUIRE(ch.put(x) == channel_status::ok);
  CHECK(ch.try_get()->value == 1);
}

TEST_CASE("a subscriber whose items cannot be copied out of the batch loses "
          "none of them") {
  weave::runtime rt;
  weave::channel<fragile> ch{rt, n};
  for (int i = 0; i < n; ++i)
    REQUIRE(ch.put(fragile{i}) == channel_status::ok);
  auto victim = rt.system().spawn([ch](caf::event_based_actor* self) mutable
                                  -> caf::behavior {
    return {
      [=](int) mutable { ch.subscribe(self, 3); },
      [](weave::channel_batch<fragile>& b) {
        static_cast<void>(b.items()); // throws: the actor dies of it
      },
    };
  });
  caf::scoped_actor self{rt.system()};
  self->monitor(victim);
  fragile::fail = true;
  self->send(victim, 1);
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; },
                caf::after(weave::test::patience) >> [] {});
  fragile::fail = false;
  REQUIRE(down);
  // The batch it was handling dies after the down message: wait for it.
  auto until = std::chrono::steady_clock::now() + weave::test::patience;
  while (ch.stats().requeued < 3 && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  std::vector<int> got;
  while (auto r = ch.try_get())
    got.push_back(r->value);
  CHECK(got == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(ch.stats().lost == 0u);
}
