// future and promise: waits with any timeout, continuations of every
// idiomatic signature, user code (values' constructors, continuations) never
// under weave's lock, and one allocation per submitted function.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <type_traits>

#include "runtime/internal/function_job.hpp"
#include "runtime/internal/future_state.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/weave.hpp"
#include "tests/allocation_counter.hpp" // counts this binary's allocations
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::latch;

using weave::test::tl_allocations;

namespace {

/// How long a value takes to arrive after a wait began (creates the
/// condition "the wait had to wait"; nothing waits for it to pass).
constexpr auto arrival_delay = std::chrono::milliseconds{20};

/// Waits on `f` with `timeout` while another thread sets the value later.
template <class Duration>
bool waits_for_late_value(Duration timeout) {
  weave::promise<int> p;
  auto f = p.get_future();
  std::thread setter{[p]() mutable {
    std::this_thread::sleep_for(arrival_delay);
    p.set_value(1);
  }};
  bool ok = f.wait_for(timeout);
  setter.join();
  return ok && f.get() == 1;
}

} // namespace

TEST_CASE("wait_for with a huge timeout waits for the value instead of "
          "giving up at once") {
  CHECK(waits_for_late_value(std::chrono::seconds::max()));
  CHECK(waits_for_late_value(std::chrono::hours::max()));
  CHECK(waits_for_late_value(std::chrono::nanoseconds::max()));
  CHECK(waits_for_late_value(std::chrono::duration<double>{1e300}));
  CHECK(waits_for_late_value(
    std::chrono::duration<double>{std::numeric_limits<double>::infinity()}));
}

TEST_CASE("wait_for refuses a negative or NaN timeout with invalid_argument") {
  weave::promise<int> p;
  auto f = p.get_future();
  auto code_of = [&](auto timeout) {
    try {
      f.wait_for(timeout);
      return std::string{"accepted"};
    } catch (const weave::exception& e) {
      return std::string{weave::to_string(e.code())};
    }
  };
  CHECK(code_of(-1ms) == "invalid_argument");
  CHECK(code_of(std::chrono::hours::min()) == "invalid_argument");
  CHECK(code_of(std::chrono::duration<double>{std::nan("")})
        == "invalid_argument");
  CHECK_FALSE(f.wait_for(0ms));
}

TEST_CASE("then accepts a callback taking the result by value, by reference "
          "or by const reference") {
  auto by_value = weave::make_ready_future(1).then(
    [](weave::result<int> r) { return *r + 1; });
  auto by_ref = weave::make_ready_future(2).then(
    [](weave::result<int>& r) { return *r + 1; });
  auto by_cref = weave::make_ready_future(3).then(
    [](const weave::result<int>& r) { return *r + 1; });
  auto by_rref = weave::make_ready_future(4).then(
    [](weave::result<int>&& r) { return *r + 1; });
  auto generic = weave::make_ready_future(5).then(
    [](auto& r) { return *r + 1; });
  CHECK(by_value.get() == 2);
  CHECK(by_ref.get() == 3);
  CHECK(by_cref.get() == 4);
  CHECK(by_rref.get() == 5);
  CHECK(generic.get() == 6);
  // Move-only values: by value moves the result in, by reference lets the
  // callback take it.
  using ptr = std::unique_ptr<int>;
  auto moved = weave::make_ready_future(std::make_unique<int>(7)).then(
    [](weave::result<ptr> r) { return **r; });
  auto taken = weave::make_ready_future(std::make_unique<int>(8)).then(
    [](weave::result<ptr>& r) { return ptr{std::move(*r)}; });
  auto peeked = weave::make_ready_future(std::make_unique<int>(9)).then(
    [](const weave::result<ptr>& r) { return **r; });
  CHECK(moved.get() == 7);
  CHECK(*taken.get() == 8);
  CHECK(peeked.get() == 9);
  // void futures, and errors, reach every form.
  weave::promise<void> failing;
  auto seen = failing.get_future().then([](const weave::result<void>& r) {
    return r ? std::string{"ok"} : std::string{"error"};
  });
  failing.set_error(weave::make_error(weave::errc::cancelled, "test"));
  CHECK(seen.get() == "error");
}

namespace {

/// A value whose move constructor attaches a continuation to the future it
/// travels through: if weave ran it under the state's lock, it would
/// deadlock on that lock.
struct reentrant_value {
  static inline weave::future<reentrant_value>* watched = nullptr;
  static inline std::atomic<int> continuations{0};

  reentrant_value() = default;

  reentrant_value(reentrant_value&&) noexcept {
    if (auto f = watched) {
      watched = nullptr; // once
      f->then([](const weave::result<reentrant_value>&) { ++continuations; });
    }
  }
};

} // namespace

TEST_CASE("a value's move constructor runs without the future's lock held") {
  // On the heap: if the setter deadlocks, they are left to it.
  auto p = std::make_unique<weave::promise<reentrant_value>>();
  auto target = std::make_unique<weave::future<reentrant_value>>(
    p->get_future());
  latch done{1};
  std::thread setter{[&p, &target, &done] {
    reentrant_value::watched = target.get();
    p->set_value(reentrant_value{}); // the move into the state calls then()
    done.count_down();
  }};
  bool finished = done.wait();
  CHECK(finished);
  if (!finished) {
    // Deadlocked on the state's lock: leave the thread and what it uses.
    setter.detach();
    p.release();
    target.release();
    return;
  }
  setter.join();
  CHECK(reentrant_value::continuations.load() == 1);
}

TEST_CASE("a plain promise's state carries no executor fields; a submitted "
          "function is state and job in one object") {
  using state = weave::internal::future_state<int>;
  using fn_job = weave::internal::function_job<int, int (*)()>;
  static_assert(!std::is_base_of<weave::internal::job, state>::value,
                "a promise's shared state must not be a job");
  CHECK(std::is_base_of<weave::internal::job, fn_job>::value);
  CHECK(std::is_base_of<state, fn_job>::value);
}

TEST_CASE("a submitted function costs one allocation on the caller's thread") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 1, "counted"};
  CHECK(pool.submit([] { return 1; }).get() == 1); // the worker exists now
  auto before = tl_allocations;
  auto f = pool.submit([] { return 2; });
  auto pool_cost = tl_allocations - before;
  CHECK(f.get() == 2);
  CHECK(pool_cost == 1u);
  weave::loop lp{rt, "counted-loop"};
  CHECK(lp.submit([] { return 1; }).get() == 1);
  before = tl_allocations;
  auto g = lp.submit([] { return 2; });
  auto loop_cost = tl_allocations - before;
  CHECK(g.get() == 2);
  // The job (state, function and executor fields together) plus the CAF
  // message that carries it into the loop.
  CHECK(loop_cost == 2u);
}

TEST_CASE("a promise destroyed unset completes its future with "
          "broken_promise") {
  weave::future<int> f;
  {
    weave::promise<int> p;
    f = p.get_future();
  }
  REQUIRE(f.done());
  CHECK(weave::is(f.get_result().error(), weave::errc::broken_promise));
}
