// Loop tasks that take a `weave::stop_token`: `cancel()` (and a deadline,
// and the loop's end) reach a task that runs or finishes later; a task
// without a token behaves as before.
#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/stop_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::error_of;
using weave::test::latch;

namespace {

using callback_fn = std::function<void()>;
using stop_cb = weave::stop_callback<callback_fn>;

/// Stalls the loop until `release()`; for tests that need a task queued.
struct loop_stall {
  latch hold{1};
  latch holding{1};

  explicit loop_stall(weave::loop& lp) {
    lp.post([this] {
      holding.count_down();
      hold.wait(); // stalls the loop on purpose, for the test
    });
  }

  void release() {
    hold.count_down();
  }
};

} // namespace

static_assert(std::is_empty<weave::internal::loop_task_stop<false>>::value,
              "a task without a token carries no stop state");

TEST_CASE("a token task gets a token that is not stopped when nobody stops "
          "it") {
  weave::runtime rt;
  weave::loop lp{rt, "token-loop"};
  auto plain = lp.submit([](weave::stop_token st) {
    return st.stop_possible() && !st.stop_requested() ? 1 : 0;
  });
  auto with_cx = lp.submit([](weave::loop_context& cx, weave::stop_token st) {
    return cx.name() + (st.stop_possible() && !st.stop_requested()
                          ? ":live"
                          : ":stopped");
  });
  auto later = lp.submit([](weave::loop_context& cx, weave::stop_token st) {
    return cx.sleep(1ms).then([st](weave::result<void> r) {
      return r && !st.stop_requested() ? 3 : 0;
    });
  });
  CHECK(plain.get() == 1);
  CHECK(with_cx.get() == "token-loop:live");
  CHECK(later.get() == 3);
  CHECK(lp.stats().submitted == 3);
}

TEST_CASE("cancelling a queued token task: it never runs") {
  weave::runtime rt;
  weave::loop lp{rt, "queued"};
  loop_stall stall{lp};
  REQUIRE(stall.holding.wait());
  std::atomic<int> ran{0};
  auto f = lp.submit([&](weave::stop_token) { ++ran; return 1; });
  CHECK(f.cancel());
  CHECK_FALSE(f.cancel());
  stall.release();
  lp.submit([] {}).get();
  CHECK(ran.load() == 0);
  CHECK(error_of(f) == weave::errc::cancelled);
}

TEST_CASE("cancelling a token task that finishes later requests its stop; "
          "its continuation sees it; the submit completes with cancelled") {
  weave::runtime rt;
  weave::loop lp{rt, "async-cancel"};
  weave::promise<int> inner;
  latch started{1};
  std::atomic<int> seen_cause{-1};
  std::atomic<int> continuations{0};
  auto f = lp.submit([&](weave::stop_token st) {
    auto g = inner.get_future().then([&, st](weave::result<int> r) {
      ++continuations;
      seen_cause = static_cast<int>(st.cause());
      return r ? *r : -1;
    });
    started.count_down();
    return g;
  });
  REQUIRE(started.wait());
  CHECK(f.cancel());
  CHECK_FALSE(f.done()); // its own future has not completed yet
  CHECK(f.cancel());     // a stop is requested: the outcome is its cause
  // The task finishes: its continuation runs in the loop, sees the stop.
  lp.post([&] { inner.set_value(42); });
  CHECK(error_of(f) == weave::errc::cancelled);
  CHECK(continuations.load() == 1);
  CHECK(seen_cause.load() == static_cast<int>(weave::errc::cancelled));
  CHECK_FALSE(f.cancel()); // completed
}

TEST_CASE("a stop callback that completes the task on the cancelling thread: "
          "the submit completes with cancelled, no deadlock") {
  weave::runtime rt;
  weave::loop lp{rt, "reentrant"};
  std::optional<stop_cb> cb; // made in the loop, destroyed after the test
  std::atomic<int> callbacks{0};
  auto f = lp.submit([&](weave::loop_context&, weave::stop_token st) {
    weave::promise<int> p;
    auto fut = p.get_future();
    cb.emplace(st, [&callbacks, p]() mutable {
      ++callbacks;
      p.set_value(7); // completes the task inside the stop request
    });
    return fut;
  });
  // The loop runs one task at a time: once the next one is done, `f`'s
  // task has returned and waits for its own future.
  lp.submit([] {}).get();
  CHECK_FALSE(f.done());
  CHECK(f.cancel());
  // Completed inside cancel(), on this thread.
  CHECK(f.done());
  CHECK(callbacks.load() == 1);
  CHECK(error_of(f) == weave::errc::cancelled);
  CHECK_FALSE(f.cancel());
  lp.stop();
  lp.join();
}

TEST_CASE("cancelling a running synchronous token task from another thread "
          "requests its stop; the outcome is cancelled") {
  weave::runtime rt;
  weave::loop lp{rt, "sync-cancel"};
  latch started{1};
  std::atomic<bool> saw_stop{false};
  auto f = lp.submit([&](weave::stop_token st) {
    started.count_down();
    while (!st.stop_requested()) // ends once the test cancels it
      std::this_thread::yield();
    saw_stop = st.cause() == weave::errc::cancelled;
    return 5; // cut short: never handed out
  });
  REQUIRE(started.wait());
  CHECK(f.cancel());
  CHECK(error_of(f) == weave::errc::cancelled);
  CHECK(saw_stop.load());
}

TEST_CASE("a stop requested after a token task completed: cancel returns "
          "false and the value stays") {
  weave::runtime rt;
  weave::loop lp{rt, "after"};
  auto now = lp.submit([](weave::stop_token) { return 7; });
  now.wait();
  CHECK_FALSE(now.cancel());
  CHECK(now.get() == 7);
  weave::promise<int> inner;
  std::optional<weave::stop_token> token;
  auto later = lp.submit([&](weave::stop_token st) {
    token = st;
    return inner.get_future();
  });
  lp.post([&] { inner.set_value(8); });
  later.wait();
  CHECK_FALSE(later.cancel());
  CHECK(later.get() == 8);
  REQUIRE(token.has_value()); // written in the loop before `later` completed
  CHECK_FALSE(token->stop_requested());
}

TEST_CASE("stopping the loop while a token task finishes later: its stop is "
          "requested with shut_down before its future fails") {
  weave::runtime rt;
  weave::loop lp{rt, "ending"};
  latch started{1};
  std::optional<stop_cb> cb; // made in the loop, destroyed after join()
  std::atomic<int> callback_cause{-1};
  std::atomic<int> continuation_cause{-1};
  std::atomic<bool> submit_done_in_callback{true};
  std::optional<weave::future<int>> f;
  f = lp.submit([&](weave::loop_context& cx, weave::stop_token st) {
    cb.emplace(st, [&, st] {
      callback_cause = static_cast<int>(st.cause());
      submit_done_in_callback = f->done();
    });
    auto g = cx.sleep(std::chrono::hours{1}).then(
      [&, st](weave::result<void> r) {
        continuation_cause = static_cast<int>(st.cause());
        return r ? 1 : -1;
      });
    started.count_down();
    return g;
  });
  REQUIRE(started.wait());
  lp.stop();
  lp.join();
  CHECK(error_of(*f) == weave::errc::shut_down);
  CHECK(callback_cause.load() == static_cast<int>(weave::errc::shut_down));
  CHECK_FALSE(submit_done_in_callback.load());
  CHECK(continuation_cause.load() == static_cast<int>(weave::errc::shut_down));
  CHECK(lp.stats().futures_failed == 1);
}

TEST_CASE("a function without a token is unchanged: a running task cannot be "
          "cancelled and keeps its value") {
  weave::runtime rt;
  weave::loop lp{rt, "plain"};
  weave::promise<int> inner;
  latch started{1};
  auto f = lp.submit([&](weave::loop_context&) {
    started.count_down();
    return inner.get_future();
  });
  REQUIRE(started.wait());
  CHECK_FALSE(f.cancel());
  lp.post([&] { inner.set_value(9); });
  CHECK(f.get() == 9);
  CHECK_FALSE(f.cancel());
  auto g = lp.submit([] { return 10; });
  CHECK(g.get() == 10);
}

TEST_CASE("a token task under a deadline scope is stopped with timeout at "
          "the deadline; a task without a token ignores the deadline") {
  weave::runtime rt;
  weave::loop lp{rt, "deadline"};
  lp.submit([] {}).get(); // the loop is up: the tasks below start at once
  weave::promise<int> plain_inner;
  latch started{2};
  std::optional<stop_cb> cb;
  std::atomic<int> callback_cause{-1};
  std::optional<weave::future<int>> plain;
  std::optional<weave::future<int>> timed;
  {
    weave::deadline_scope scope{weave::test::start_window}; // beyond start
    plain = lp.submit([&] {
      started.count_down();
      return plain_inner.get_future();
    });
    timed = lp.submit([&](weave::stop_token st) {
      weave::promise<int> p;
      auto fut = p.get_future();
      cb.emplace(st, [&callback_cause, st, p]() mutable {
        callback_cause = static_cast<int>(st.cause());
        p.set_value(1);
      });
      started.count_down();
      return fut;
    });
  }
  REQUIRE(started.wait());
  // The deadline passes by itself; the timer requests the stop.
  CHECK(error_of(*timed) == weave::errc::timeout);
  CHECK(callback_cause.load() == static_cast<int>(weave::errc::timeout));
  // The plain task, older than the deadline, still completes normally.
  CHECK_FALSE(plain->done());
  lp.post([&] { plain_inner.set_value(11); });
  CHECK(plain->get() == 11);
}

TEST_CASE("a token task whose deadline passed before it started never "
          "runs") {
  weave::runtime rt;
  weave::loop lp{rt, "late"};
  loop_stall stall{lp};
  REQUIRE(stall.holding.wait());
  std::atomic<int> ran{0};
  std::optional<weave::future<int>> f;
  {
    weave::deadline_scope scope{1ms};
    f = lp.submit([&](weave::stop_token) { ++ran; return 1; });
  }
  // The timer answers it while the loop is stalled.
  CHECK(error_of(*f) == weave::errc::timeout);
  stall.release();
  lp.submit([] {}).get();
  CHECK(ran.load() == 0);
}

namespace {

/// A value whose move throws: storing it in the future fails.
struct throws_on_move {
  throws_on_move() = default;
  throws_on_move(throws_on_move&&) {
    throw std::runtime_error("moved");
  }
};

} // namespace

TEST_CASE("a token task whose value throws while it is stored: the future "
          "fails with that error, once") {
  weave::runtime rt;
  weave::loop lp{rt, "throwing"};
  auto f = lp.submit([](weave::stop_token) { return throws_on_move{}; });
  auto r = f.get_result();
  REQUIRE_FALSE(r);
  CHECK(weave::is(r.error(), weave::errc::job_failed));
  CHECK(weave::render(r.error()).find("moved") != std::string::npos);
  CHECK_FALSE(f.cancel());
}
