// Review of who keeps what alive: a loop task's function and the loop
// itself once their work is done.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;

namespace {

/// Waits (bounded) until `w` expired: something released on another thread
/// (a CAF actor's cleanup) is seen as soon as it happened.
bool expires(const std::weak_ptr<int>& w,
             std::chrono::milliseconds limit = weave::test::patience) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!w.expired()) {
    if (std::chrono::steady_clock::now() > until)
      return false;
    std::this_thread::yield();
  }
  return true;
}

} // namespace

TEST_CASE("a loop task's captures go once its function returned, not with "
          "its future") {
  weave::runtime rt;
  weave::loop lp{rt, "captures"};
  auto sentinel = std::make_shared<int>(7);
  std::weak_ptr<int> w = sentinel;
  auto f = lp.submit([s = std::move(sentinel)] { return *s; });
  CHECK(f.get() == 7);
  // The loop runs one task at a time: once the next one ran, the first
  // one's `run()` has returned.
  CHECK(lp.submit([] { return 0; }).get() == 0);
  CHECK(w.expired()); // `f` is still alive
}

TEST_CASE("a loop task that finishes later keeps its captures until its "
          "returned future completed, then lets go of them") {
  weave::runtime rt;
  weave::loop lp{rt, "finishing-later"};
  auto sentinel = std::make_shared<int>(3);
  std::weak_ptr<int> w = sentinel;
  weave::promise<int> inner;
  auto f = lp.submit([s = std::move(sentinel), &inner] {
    // The continuation uses the capture, as a coroutine uses its frame.
    return inner.get_future().then(
      [&s](weave::result<int> r) { return r ? *r + *s : -1; });
  });
  CHECK(lp.submit([] { return 0; }).get() == 0); // the task's function ran
  CHECK_FALSE(w.expired());
  inner.set_value(4);
  CHECK(f.get() == 7);
  CHECK(expires(w)); // `f` is still alive
}

TEST_CASE("a loop that ended is not kept alive by a pending sleep's timer "
          "entry") {
  weave::runtime rt;
  auto sentinel = std::make_shared<int>(2);
  std::weak_ptr<int> w = sentinel;
  {
    weave::loop lp{rt, "sleepy"};
    lp.set_exception_handler([s = std::move(sentinel)](const caf::error&) {});
    auto f = lp.submit([](weave::loop_context& cx) {
      cx.sleep(std::chrono::hours{1}); // pending when the loop ends
      return 1;
    });
    CHECK(f.get() == 1);
    lp.stop();
    lp.join();
  }
  // The loop's state (and the handler it holds) goes with the loop's actor,
  // not an hour later when the sleep's timer entry is due.
  CHECK(expires(w));
}
