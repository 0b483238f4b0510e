// as_completed: every outcome handed out exactly once, in completion order,
// with its index; blocking next/next_for with weave's timeout and
// must-not-block rules; clear refusal of bad inputs. (for_each:
// as_completed_for_each_test.cpp.)
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "runtime/weave.hpp"
#include "tests/compose_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::latch;

using weave::test::code_of;
using weave::test::futures_of;
using weave::test::message_of;
using weave::test::keeps_each_threads_order;
using weave::test::racing_promises;
using weave::test::random_shares;

namespace {

/// A wait that must time out (nothing will complete meanwhile).
constexpr auto short_wait = 10ms;

/// Creates the condition "a thread is blocked in next()" or "a value comes
/// later" (nothing waits for it: each test holds whichever happens first).
constexpr auto block_delay = 20ms;

} // namespace

TEST_CASE("as_completed hands out every outcome once, in completion order, "
          "with its index") {
  std::vector<weave::promise<int>> ps(5);
  auto q = weave::as_completed(futures_of(ps));
  CHECK(q.size() == 5u);
  ps[3].set_value(30);
  auto c = q.next();
  REQUIRE(c);
  CHECK(c->index == 3u);
  CHECK(*c->outcome == 30);
  ps[0].set_value(0);
  ps[4].set_error(weave::make_error(weave::errc::timeout, "four"));
  CHECK(q.next()->index == 0u);
  auto e = q.next();
  REQUIRE(e);
  CHECK(e->index == 4u);
  CHECK(weave::render(e->outcome.error()) == "weave::timeout: four");
  CHECK_FALSE(q.next_for(0s));
  CHECK_FALSE(q.next_for(short_wait));
  CHECK(q.remaining() == 2u);
  ps[2].set_value(20);
  ps[1].set_value(10);
  CHECK(q.next()->index == 2u);
  CHECK(q.next()->index == 1u);
  CHECK_FALSE(q.next());
  CHECK_FALSE(q.next_for(1h));
  CHECK(q.remaining() == 0u);
}

TEST_CASE("inputs complete at the call come first, in input order; a broken "
          "promise is handed out as broken_promise") {
  weave::promise<int> pending;
  auto broken = [] {
    weave::promise<int> p;
    return p.get_future();
  }();
  std::vector<weave::future<int>> fs{weave::make_ready_future(1),
                                     pending.get_future(), broken,
                                     weave::make_ready_future(3)};
  auto q = weave::as_completed(fs.begin(), fs.end());
  CHECK(q.next()->index == 0u);
  auto b = q.next();
  CHECK(b->index == 2u);
  CHECK(weave::is(b->outcome.error(), weave::errc::broken_promise));
  CHECK(q.next()->index == 3u);
  pending.set_value(2);
  CHECK(q.next()->index == 1u);
}

TEST_CASE("with no inputs the queue is empty at once") {
  auto q = weave::as_completed(std::vector<weave::future<int>>{});
  CHECK_FALSE(q.next());
  CHECK(q.begin() == q.end());
  auto r = weave::as_completed(std::vector<weave::future<int>>{});
  auto all = r.for_each([](weave::completion<int>) {});
  REQUIRE(all.done());
  CHECK(all.get_result());
}

TEST_CASE("as_completed refuses an invalid or consumed input, naming its "
          "position") {
  auto ready = weave::make_ready_future(1);
  CHECK(message_of([&] {
    weave::as_completed(std::vector<weave::future<int>>{ready, {}});
  }).find("invalid_argument: as_completed: the future at position 1 is "
          "invalid")
        != std::string::npos);
  auto used = weave::make_ready_future(2);
  used.get();
  CHECK(message_of([&] {
    weave::as_completed(std::vector<weave::future<int>>{used});
  }).find("already_retrieved: as_completed: the future at position 0")
        != std::string::npos);
  CHECK(ready.get() == 1);
}

TEST_CASE("next_for refuses a negative timeout, and a huge one waits for the "
          "outcome") {
  weave::promise<int> p;
  auto q = weave::as_completed(std::vector<weave::future<int>>{p.get_future()});
  CHECK(code_of([&] { q.next_for(-1ms); }) == weave::errc::invalid_argument);
  CHECK(code_of([&] { q.next_for(std::chrono::duration<double>{NAN}); })
        == weave::errc::invalid_argument);
  std::thread setter{[&] {
    std::this_thread::sleep_for(block_delay);
    p.set_value(7);
  }};
  auto c = q.next_for(std::chrono::hours::max());
  setter.join();
  REQUIRE(c);
  CHECK(*c->outcome == 7);
}

TEST_CASE("next refuses to block a loop's thread with would_deadlock") {
  weave::runtime rt;
  weave::loop lp{rt, "queue-loop"};
  weave::promise<int> p;
  auto q = weave::as_completed(std::vector<weave::future<int>>{p.get_future()});
  auto* qp = &q;
  auto code = lp.submit([qp] { return code_of([qp] { qp->next(); }); }).get();
  CHECK(code == weave::errc::would_deadlock);
  p.set_value(1);
  CHECK(q.next()->index == 0u); // the refusal took nothing
}

TEST_CASE("16 threads completing 1000 promises: the iteration sees each once, "
          "in an order that keeps each thread's own order") {
  auto seed = std::random_device{}();
  INFO("seed " << seed);
  auto shares = random_shares(seed);
  std::vector<weave::promise<size_t>> ps(racing_promises);
  auto q = weave::as_completed(futures_of(ps));
  std::thread racer{[&] { weave::test::complete_racing(ps, shares); }};
  std::vector<size_t> seen;
  std::vector<int> count(racing_promises, 0);
  for (auto& c : q) {
    REQUIRE(c.outcome);
    CHECK(*c.outcome == c.index);
    seen.push_back(c.index);
    ++count[c.index];
  }
  racer.join();
  CHECK(seen.size() == racing_promises);
  CHECK(std::all_of(count.begin(), count.end(), [](int n) { return n == 1; }));
  CHECK(keeps_each_threads_order(seen, shares));
}

