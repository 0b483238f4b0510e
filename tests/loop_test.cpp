// loop and future from plain threads: every future ends exactly once,
// per-sender FIFO, no blocking on the loop's thread, clear errors for bad
// calls.
#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::failures;
using weave::test::latch;

namespace {

constexpr int submit_threads = 4;
constexpr int submits_per_thread = 2000;

} // namespace

TEST_CASE("N threads x M submits all complete with the right values") {
  weave::runtime rt;
  weave::loop lp{rt, "calc-loop"};
  std::vector<std::thread> threads;
  std::atomic<long> sum{0};
  failures bad;
  for (int t = 0; t < submit_threads; ++t)
    threads.emplace_back([&, t] {
      std::vector<weave::future<int>> fs;
      for (int i = 0; i < submits_per_thread; ++i)
        fs.push_back(lp.submit([t, i] { return t * submits_per_thread + i; }));
      for (auto& f : fs) {
        auto r = f.get_result();
        if (bad.check(static_cast<bool>(r), "a submit failed"))
          sum += *r;
      }
    });
  for (auto& th : threads)
    th.join();
  CHECK(bad.messages() == "");
  long n = submit_threads * submits_per_thread;
  CHECK(sum.load() == n * (n - 1) / 2);
  CHECK(lp.stats().submitted == static_cast<size_t>(n));
}

TEST_CASE("the loop runs on its own named thread, or on the scheduler") {
  weave::runtime rt;
  weave::loop own{rt, "io-loop"};
  CHECK(own.submit([] { return weave::this_thread_name(); }).get()
        == "io-loop");
  weave::loop shared{rt, "shared-loop", weave::loop::shared};
  auto name = shared.submit([] { return weave::this_thread_name(); }).get();
  CHECK(name.rfind("weave-sched-", 0) == 0);
}

TEST_CASE("posts run in FIFO order per posting thread") {
  weave::runtime rt;
  weave::loop lp{rt, "fifo"};
  constexpr int posters = 4;
  constexpr int posts_each = 20000;
  std::vector<std::pair<int, int>> seen; // touched only inside the loop
  seen.reserve(posters * posts_each);
  std::vector<std::thread> threads;
  failures bad;
  for (int t = 0; t < posters; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < posts_each; ++i)
        bad.check(lp.post([&seen, t, i] { seen.emplace_back(t, i); }),
                  "post refused on a running loop");
    });
  for (auto& th : threads)
    th.join();
  CHECK(bad.messages() == "");
  // A submit after all posts returns when every earlier post has run.
  lp.submit([] {}).get();
  REQUIRE(seen.size() == static_cast<size_t>(posters * posts_each));
  std::map<int, int> next;
  bool ordered = true;
  for (auto& [t, i] : seen) {
    if (i != next[t])
      ordered = false;
    next[t] = i + 1;
  }
  CHECK(ordered);
}

TEST_CASE("a function may finish later; the future waits for it") {
  weave::runtime rt;
  weave::loop lp{rt, "async"};
  failures bad;
  auto t0 = std::chrono::steady_clock::now();
  auto f = lp.submit([&bad](weave::loop_context& cx) {
    auto where = weave::this_thread_name();
    // Long enough that the second submit below (one round trip) finishes
    // first also when the test thread is descheduled under a sanitizer.
    return cx.sleep(1s).then([where, &bad](weave::result<void> slept) {
      bad.check(static_cast<bool>(slept), "the sleep failed");
      return where + "|" + weave::this_thread_name();
    });
  });
  // Meanwhile the loop is free: another submit completes before the first.
  CHECK(lp.submit([] { return 7; }).get() == 7);
  CHECK_FALSE(f.done());
  CHECK(f.get() == "async|async");
  CHECK(std::chrono::steady_clock::now() - t0 >= 1s);
  CHECK(bad.messages() == "");
}

TEST_CASE("a loop function can offload and ask actors; results come back "
          "inside the loop") {
  weave::runtime rt;
  weave::loop lp{rt, "worker-loop"};
  auto doubler = rt.system().spawn([]() -> caf::behavior {
    return {[](int x) { return 2 * x; }};
  });
  failures bad;
  auto f = lp.submit([doubler, &bad](weave::loop_context& cx) {
    return cx.offload([] { return 20; })
      .then([&cx, doubler, &bad](weave::result<int> v) {
        bad.check(weave::this_thread_name() == "worker-loop",
                  "the offload's continuation ran on "
                    + weave::this_thread_name());
        bad.check(static_cast<bool>(v), "the offload failed");
        return cx.request<int>(doubler, weave::test::patience,
                               (v ? *v : 0) + 1);
      });
  });
  CHECK(f.get() == 42);
  CHECK(bad.messages() == "");
  // The same from a plain thread, through the loop.
  CHECK(lp.request<int>(doubler, weave::test::patience, 5).get() == 10);
  caf::anon_send_exit(doubler, caf::exit_reason::user_shutdown);
}

TEST_CASE("stop fails pending work with shut_down; later submits fail at once") {
  weave::runtime rt;
  weave::loop lp{rt, "stopping"};
  auto pending = lp.submit([](weave::loop_context& cx) {
    return cx.sleep(1h).then([](weave::result<void>) { return 1; });
  });
  CHECK(lp.submit([] { return 2; }).get() == 2);
  lp.stop();
  lp.stop(); // idempotent
  lp.join();
  auto res = pending.get_result();
  REQUIRE_FALSE(res);
  CHECK(weave::is(res.error(), weave::errc::shut_down));
  auto late = lp.submit([] { return 3; });
  CHECK(late.done());
  CHECK(weave::is(late.get_result().error(), weave::errc::shut_down));
  CHECK_FALSE(lp.post([] {}));
  CHECK(lp.stats().futures_failed == 1u);
}

TEST_CASE("submit racing stop from several threads: every future ends once") {
  constexpr int rounds = 20;
  for (int round = 0; round < rounds; ++round) {
    weave::runtime rt;
    weave::loop lp{rt, "race"};
    std::atomic<int> ok{0}, refused{0}, callbacks{0};
    failures bad;
    std::vector<std::thread> threads;
    latch go{1};
    for (int t = 0; t < submit_threads; ++t)
      threads.emplace_back([&] {
        go.wait();
        std::vector<weave::future<int>> fs;
        for (int i = 0; i < 500; ++i) {
          auto f = lp.submit([i](weave::loop_context& cx) {
            if (i % 2 == 0)
              return weave::make_ready_future(i);
            return cx.sleep(1ms).then([i](weave::result<void>) { return i; });
          });
          fs.push_back(f.then([&](weave::result<int> r) {
            ++callbacks;
            return r ? *r : -1;
          }));
        }
        for (auto& f : fs) {
          auto r = f.get_result();
          if (bad.check(static_cast<bool>(r), "a continuation failed"))
            (*r >= 0 ? ok : refused)++;
        }
      });
    go.count_down();
    lp.stop();
    for (auto& th : threads)
      th.join();
    CHECK(bad.messages() == "");
    CHECK(ok + refused == submit_threads * 500);
    CHECK(callbacks.load() == submit_threads * 500);
  }
}

TEST_CASE("a queued submit can be cancelled and never runs") {
  weave::runtime rt;
  weave::loop lp{rt, "cancel"};
  latch hold{1};
  latch holding{1};
  lp.post([&] {
    holding.count_down();
    hold.wait(); // stalls the loop on purpose, for the test
  });
  REQUIRE(holding.wait());
  std::atomic<bool> ran{false};
  auto f = lp.submit([&] { ran = true; });
  CHECK(f.cancel());
  CHECK_FALSE(f.cancel());
  hold.count_down();
  lp.submit([] {}).get();
  CHECK_FALSE(ran.load());
  CHECK(weave::is(f.get_result().error(), weave::errc::cancelled));
}

TEST_CASE("get() inside the loop is refused instead of deadlocking") {
  weave::runtime rt;
  weave::loop lp{rt, "strict"};
  auto f = lp.submit([] {
    auto inner = weave::make_ready_future(1);
    try {
      inner.get();
      return std::string{"allowed"};
    } catch (const weave::exception& e) {
      return std::string{weave::to_string(e.code())};
    }
  });
  CHECK(f.get() == "would_deadlock");
}

TEST_CASE("an exception escaping a posted function is reported, not fatal") {
  weave::runtime rt;
  weave::loop lp{rt, "reporting"};
  std::vector<std::string> reports;
  lp.set_exception_handler(
    [&](const caf::error& err) { reports.push_back(weave::render(err)); });
  lp.post([] { throw std::runtime_error("bad callback"); });
  CHECK(lp.submit([] { return 1; }).get() == 1); // the loop lives on
  REQUIRE(reports.size() == 1u);
  CHECK(reports[0].find("bad callback") != std::string::npos);
  CHECK(lp.stats().post_failures == 1u);
}

TEST_CASE("the runtime's shutdown stops loops and fails their pending work") {
  weave::future<int> pending;
  weave::shutdown_report report;
  {
    weave::runtime rt;
    weave::loop lp{rt, "owned"};
    pending = lp.submit([](weave::loop_context& cx) {
      return cx.sleep(1h).then([](weave::result<void>) { return 1; });
    });
    CHECK(lp.submit([] { return 0; }).get() == 0);
    report = rt.shutdown(weave::test::patience);
  }
  CHECK(report.futures_failed == 1u);
  CHECK(weave::is(pending.get_result().error(), weave::errc::shut_down));
}

TEST_CASE("a loop destroyed from its own thread stops without waiting on "
          "itself") {
  weave::runtime rt;
  auto lp = std::make_shared<weave::loop>(rt, "self-destroying");
  auto holder = std::make_shared<std::shared_ptr<weave::loop>>(lp);
  auto f = lp->submit([holder] {
    holder->reset(); // the last owner goes away on the loop's thread
    return 1;
  });
  lp.reset();
  CHECK(f.get() == 1);
}

TEST_CASE("call_soon runs after the work already queued, and is refused once "
          "the loop is stopped") {
  weave::runtime rt;
  weave::loop lp{rt, "soon"};
  std::vector<int> order; // touched only inside the loop
  auto accepted = lp.submit([&order](weave::loop_context& cx) {
    order.push_back(1);
    return cx.call_soon([&order] { order.push_back(2); });
  });
  CHECK(accepted.get());
  lp.submit([&order] { order.push_back(3); }).get();
  CHECK(order == std::vector<int>{1, 2, 3});
  auto refused = lp.submit([&lp](weave::loop_context& cx) {
    lp.stop();
    return cx.call_soon([] {});
  });
  CHECK_FALSE(refused.get());
  lp.join();
}

TEST_CASE("call_soon racing stop() from another thread: every call that "
          "returned true runs") {
  constexpr int rounds = 100;
  weave::runtime rt;
  for (int round = 0; round < rounds; ++round) {
    weave::loop lp{rt, "soon-race"};
    std::atomic<int> ran{0};
    latch spinning{1};
    auto accepted = lp.submit([&](weave::loop_context& cx) {
      int n = 0;
      spinning.count_down();
      // Calls until refused: the last accepted one races the stop.
      while (cx.call_soon([&ran] { ++ran; }))
        ++n;
      return n;
    });
    REQUIRE(spinning.wait());
    lp.stop();
    auto n = accepted.get();
    lp.join();
    CHECK(ran.load() == n);
    if (ran.load() != n)
      break;
  }
}

TEST_CASE("a request the actor never answers ends with weave's timeout, in "
          "the loop") {
  weave::runtime rt;
  weave::loop lp{rt, "asker"};
  auto mute = rt.system().spawn([](caf::event_based_actor* self)
                                  -> caf::behavior {
    return {[self](int) { return self->make_response_promise<int>(); }};
  });
  auto from_plain_thread = lp.request<int>(mute, 20ms, 1).get_result();
  REQUIRE_FALSE(from_plain_thread);
  CHECK(weave::is(from_plain_thread.error(), weave::errc::timeout));
  auto inside = lp.submit([&mute](weave::loop_context& cx) {
                    return cx.request<int>(mute, 20ms, 2);
                  })
                  .get_result();
  REQUIRE_FALSE(inside);
  CHECK(weave::is(inside.error(), weave::errc::timeout));
  caf::anon_send_exit(mute, caf::exit_reason::user_shutdown);
}
