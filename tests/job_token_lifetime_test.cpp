// A job's stop_token: its state lives inside the job (no allocation of its
// own), yet a token copied out of the job stays readable after the job, its
// future or handle, its executor and the runtime are gone; a value that
// holds the job's own token still goes when the job does. Under ASan, a
// token that outlived its state would be a use-after-free here.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <optional>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/stop_support.hpp"
#include "tests/allocation_counter.hpp" // counts this binary's allocations
#include "tests/test_support.hpp"

using weave::errc;
using weave::stop_token;
using weave::test::latch;

using weave::test::tl_allocations;

namespace {

/// Where a job leaves a copy of its token for the test thread (written
/// before `stored` counts down, read after it did).
struct token_box {
  stop_token token;
  latch stored{1};
};

/// A value that holds the job's own token, and tells whether it still
/// exists.
struct keeper {
  stop_token token;
  std::shared_ptr<int> alive = std::make_shared<int>(1);
};

/// Records the weak side of a keeper made on a worker thread.
struct keeper_probe {
  std::mutex mtx;
  std::weak_ptr<int> alive;
  latch made{1};

  keeper make(stop_token tok) {
    keeper k{std::move(tok)};
    {
      std::lock_guard<std::mutex> guard{mtx};
      alive = k.alive;
    }
    made.count_down();
    return k;
  }

  bool expired() {
    std::lock_guard<std::mutex> guard{mtx};
    return alive.expired();
  }
};

} // namespace

TEST_CASE("a token copied out of a cancelled pool job stays readable after "
          "the job ended, its future was dropped and the runtime is gone") {
  auto box = std::make_shared<token_box>();
  {
    weave::runtime rt{weave::test::config(weave::test::long_grace)};
    weave::blocking_pool pool{rt, 1, "lifetime"};
    auto release = std::make_shared<latch>(1);
    auto f = pool.submit([box, release](stop_token st) {
      box->token = st;
      box->stored.count_down();
      while (!st.stop_requested() && !release->ready())
        weave::sleep_for(st, std::chrono::milliseconds{10});
      return 1;
    });
    REQUIRE(box->stored.wait());
    CHECK(f.cancel());
    CHECK(weave::test::error_of(f) == errc::cancelled);
    release->count_down();
  } // future, pool and runtime gone: only the token refers to the job now
  CHECK(box->token.stop_requested());
  CHECK(box->token.stop_possible());
  CHECK(box->token.cause() == errc::cancelled);
  CHECK(box->token.error().code() == static_cast<uint8_t>(errc::cancelled));
  // A callback registered now runs at once, on this thread.
  int ran = 0;
  weave::stop_callback cb{box->token, [&ran] { ++ran; }};
  CHECK(ran == 1);
  auto copy = box->token;
  box->token = stop_token{};
  CHECK(copy.cause() == errc::cancelled);
}

TEST_CASE("a token copied out of a job that was never stopped reads as not "
          "stopped, and no longer stoppable, once the job is gone") {
  auto box = std::make_shared<token_box>();
  {
    weave::runtime rt;
    weave::blocking_pool pool{rt, 1, "lifetime"};
    auto f = pool.submit([box](stop_token st) {
      box->token = st;
      box->stored.count_down();
      return st.stop_possible() ? 7 : -1;
    });
    CHECK(f.get() == 7);
    REQUIRE(box->stored.wait());
  }
  CHECK_FALSE(box->token.stop_requested());
  CHECK(box->token.cause() == errc{});
  CHECK_FALSE(box->token.error());
  // No job is left that could request the stop.
  CHECK_FALSE(box->token.stop_possible());
  int ran = 0;
  {
    weave::stop_callback cb{box->token, [&ran] { ++ran; }};
  }
  CHECK(ran == 0);
}

TEST_CASE("a stop_callback on a job's token, registered from another thread, "
          "runs on cancel and deregisters after the job is gone") {
  auto box = std::make_shared<token_box>();
  std::atomic<int> ran{0};
  std::optional<weave::stop_callback<std::function<void()>>> cb;
  {
    weave::runtime rt{weave::test::config(weave::test::long_grace)};
    weave::blocking_pool pool{rt, 1, "lifetime"};
    auto release = std::make_shared<latch>(1);
    auto f = pool.submit([box, release](stop_token st) {
      box->token = st;
      box->stored.count_down();
      while (!st.stop_requested() && !release->ready())
        weave::sleep_for(st, std::chrono::milliseconds{10});
      return 1;
    });
    REQUIRE(box->stored.wait());
    cb.emplace(box->token, std::function<void()>{[&ran] { ++ran; }});
    box->token = stop_token{}; // the callback alone refers to the state now
    CHECK(f.cancel());
    CHECK(weave::test::error_of(f) == errc::cancelled);
    release->count_down();
  }
  CHECK(ran.load() == 1);
  cb.reset(); // the last reference: frees the job's memory
  CHECK(ran.load() == 1);
}

TEST_CASE("a token copied out of an offloaded job or a blocker stays "
          "readable after the runtime is gone") {
  auto offloaded = std::make_shared<token_box>();
  auto blocked = std::make_shared<token_box>();
  {
    weave::runtime rt;
    auto done = std::make_shared<latch>(1);
    auto actor = rt.system().spawn(
      [offloaded, done](caf::event_based_actor* self) {
        weave::offload(self, [offloaded](stop_token st) {
          offloaded->token = st;
          offloaded->stored.count_down();
          return 3;
        }).then([done](int) { done->count_down(); });
      });
    REQUIRE(done->wait());
    REQUIRE(offloaded->stored.wait());
    {
      auto b = weave::spawn_blocker(rt, [blocked](stop_token st) {
        blocked->token = st;
        blocked->stored.count_down();
        return 4;
      });
      CHECK(b.get() == 4);
    }
    REQUIRE(blocked->stored.wait());
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  }
  for (auto* box : {offloaded.get(), blocked.get()}) {
    CHECK_FALSE(box->token.stop_requested());
    CHECK(box->token.cause() == errc{});
    CHECK_FALSE(box->token.stop_possible());
  }
}

TEST_CASE("a job's value that holds the job's own token goes when the job "
          "does: the token makes no cycle") {
  keeper_probe pooled;
  keeper_probe offloaded;
  {
    weave::runtime rt;
    weave::blocking_pool pool{rt, 1, "lifetime"};
    {
      // The future is dropped unread: the value stays in the job.
      auto f = pool.submit([&pooled](stop_token st) {
        return pooled.make(std::move(st));
      });
      f.wait();
    }
    auto done = std::make_shared<latch>(1);
    auto actor = rt.system().spawn(
      [&offloaded, done](caf::event_based_actor* self) {
        // The handler reads the value in place: it stays in the job.
        weave::offload(self, [&offloaded](stop_token st) {
          return offloaded.make(std::move(st));
        }).then([done](const keeper& k) {
          if (k.alive)
            done->count_down();
        });
      });
    REQUIRE(done->wait());
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  }
  REQUIRE(pooled.made.wait());
  REQUIRE(offloaded.made.wait());
  CHECK(pooled.expired());
  CHECK(offloaded.expired());
}

TEST_CASE("a submitted function that takes a stop_token costs one "
          "allocation on the caller's thread, as one without") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 1, "counted"};
  CHECK(pool.submit([](stop_token) { return 1; }).get() == 1);
  auto before = tl_allocations;
  auto f = pool.submit([](stop_token st) { return st.stop_requested() ? 0 : 2; });
  auto cost = tl_allocations - before;
  CHECK(f.get() == 2);
  CHECK(cost == 1u);
}
