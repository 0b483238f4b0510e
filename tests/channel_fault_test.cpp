// channel<T> when memory runs out while it hands a batch to a subscriber:
// the items stay at (or go back to) the front, in order, none is lost or
// destroyed, and the channel sends them on its next operation; a put whose
// own allocation fails did not accept its item and leaves it with the
// caller.
//
// This binary replaces the global operator new: a test arms a one-shot (or
// two-shot) failure at the k-th allocation of its own thread, and sweeps k
// over every allocation a put (or close) makes, until one makes no more.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using weave::channel_status;
using weave::test::latch;

namespace fault {

/// Allocations on this thread before the first one that fails; -1: off.
thread_local long countdown = -1;
/// How many consecutive allocations fail once the countdown is reached.
thread_local int shots = 0;
thread_local bool fired = false;

void arm(long k, int n) {
  fired = false;
  shots = n;
  countdown = k;
}

/// Turns injection off; true if a failure was injected.
bool disarm() {
  countdown = -1;
  shots = 0;
  return fired;
}

bool should_fail() noexcept {
  if (countdown < 0)
    return false;
  if (countdown > 0) {
    --countdown;
    return false;
  }
  fired = true;
  if (--shots == 0)
    countdown = -1;
  return true;
}

} // namespace fault

void* operator new(std::size_t size) {
  if (fault::should_fail())
    throw std::bad_alloc{};
  if (auto* p = std::malloc(size == 0 ? 1 : size))
    return p;
  throw std::bad_alloc{};
}

void operator delete(void* p) noexcept {
  std::free(p);
}

void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

constexpr size_t capacity = 16;
constexpr size_t credit = 8;
/// More allocations than a put or a close makes.
constexpr long max_allocations = 200;

/// A subscriber that the test keeps busy (blocked in a handler) while it
/// puts, so that sending to it allocates only the mailbox element; then it
/// records the values it receives, up to the end.
template <class T>
class held_subscriber {
public:
  held_subscriber(weave::runtime& rt, weave::channel<T> ch) {
    auto holding = holding_;
    auto release = release_;
    auto got = got_;
    actor_ = rt.system().spawn(
      [ch, holding, release, got](caf::event_based_actor* self) mutable
      -> caf::behavior {
        ch.subscribe(self, credit);
        auto rec = std::make_shared<std::vector<int>>();
        return {
          [holding, release](int) {
            holding->count_down();
            release->wait();
          },
          [rec](weave::channel_batch<T>& b) {
            for (auto& x : b.items())
              rec->push_back(value_of(x));
          },
          [self, rec, got](weave::channel_closed&) mutable {
            got.set_value(*rec);
            self->quit();
          },
        };
      });
    caf::anon_send(actor_, 1);
  }

  bool hold() {
    return holding_->wait();
  }

  void release() {
    release_->count_down();
  }

  weave::future<std::vector<int>> result() {
    return got_.get_future();
  }

  static int value_of(int x) {
    return x;
  }

  static int value_of(const std::unique_ptr<int>& x) {
    return *x;
  }

private:
  std::shared_ptr<latch> holding_ = std::make_shared<latch>(1);
  std::shared_ptr<latch> release_ = std::make_shared<latch>(1);
  weave::promise<std::vector<int>> got_;
  caf::actor actor_;
};

int make_int(int i) {
  return i;
}

std::unique_ptr<int> make_box(int i) {
  return std::make_unique<int>(i);
}

bool intact(int) {
  return true;
}

bool intact(const std::unique_ptr<int>& x) {
  return x != nullptr;
}

/// Sweeps a `shots`-long allocation failure over one put to an idle
/// subscriber; returns how many of the sweep's puts hit a failure.
template <class T>
int sweep_put(T (*make)(int), int shots) {
  weave::runtime rt;
  int faults = 0;
  for (long k = 0; k < max_allocations; ++k) {
    CAPTURE(k);
    weave::channel<T> ch{rt, capacity};
    held_subscriber<T> sub{rt, ch};
    REQUIRE(sub.hold());
    std::vector<int> expected;
    auto x = make(0);
    auto threw = false;
    auto st = channel_status::closed;
    fault::arm(k, shots);
    try {
      st = ch.put(std::move(x));
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    auto fired = fault::disarm();
    if (threw) {
      CHECK(intact(x)); // not accepted: still the caller's
    } else {
      CHECK(st == channel_status::ok);
      expected.push_back(0);
    }
    // The next put sends whatever the first could not.
    for (int i = 1; i <= 2; ++i) {
      REQUIRE(ch.put(make(i)) == channel_status::ok);
      expected.push_back(i);
    }
    ch.close();
    sub.release();
    auto f = sub.result();
    REQUIRE(f.wait_for(weave::test::patience));
    CHECK(f.get() == expected);
    CHECK(ch.stats().lost == 0u);
    if (!fired)
      break;
    ++faults;
  }
  return faults;
}

} // namespace

TEST_CASE("out of memory at any allocation of a put that feeds a subscriber: "
          "no item is lost, reordered or destroyed") {
  CHECK(sweep_put<int>(make_int, 1) > 0);
  CHECK(sweep_put<int>(make_int, 2) > 0);
}

TEST_CASE("out of memory at any allocation of a put of a boxed item: a put "
          "that throws leaves the item with its caller, none is lost") {
  CHECK(sweep_put<std::unique_ptr<int>>(make_box, 1) > 0);
  CHECK(sweep_put<std::unique_ptr<int>>(make_box, 2) > 0);
}

TEST_CASE("out of memory while close() ends a subscriber: the subscriber "
          "still gets the end (at once, or from a repeated close)") {
  weave::runtime rt;
  int faults = 0;
  for (long k = 0; k < max_allocations; ++k) {
    CAPTURE(k);
    weave::channel<int> ch{rt, capacity};
    held_subscriber<int> sub{rt, ch};
    REQUIRE(sub.hold());
    fault::arm(k, 1);
    ch.close(); // never throws
    auto fired = fault::disarm();
    ch.close();
    sub.release();
    auto f = sub.result();
    REQUIRE(f.wait_for(weave::test::patience));
    CHECK(f.get().empty());
    if (!fired)
      break;
    ++faults;
  }
  CHECK(faults > 0);
}
