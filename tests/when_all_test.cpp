// when_all and gather: every outcome once and in input order, fail-fast
// gather, clear refusal of bad inputs, cancel touching only the result, no
// deadlock from continuations, no leak when every handle is dropped, use
// from a loop and from an actor.
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/compose_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::latch;

using weave::test::code_of;
using weave::test::message_of;
using weave::test::racing_promises;

namespace {

/// Every this-many-th racing promise fails instead of holding a value.
constexpr size_t failing_every = 7;

} // namespace

TEST_CASE("when_all delivers every outcome of mixed types in argument order") {
  weave::promise<int> a;
  weave::promise<std::string> b;
  weave::promise<void> c;
  weave::promise<std::unique_ptr<int>> d;
  auto all = weave::when_all(a.get_future(), b.get_future(), c.get_future(),
                             d.get_future());
  d.set_value(std::make_unique<int>(4));
  c.set_value();
  CHECK_FALSE(all.done());
  b.set_error(weave::make_error(weave::errc::timeout, "b was late"));
  CHECK_FALSE(all.done());
  a.set_value(1);
  REQUIRE(all.done());
  auto [ra, rb, rc, rd] = all.get();
  REQUIRE(ra);
  CHECK(*ra == 1);
  REQUIRE_FALSE(rb);
  CHECK(weave::render(rb.error()) == "weave::timeout: b was late");
  CHECK(static_cast<bool>(rc));
  REQUIRE(rd);
  CHECK(**rd == 4);
}

TEST_CASE("with no inputs, when_all and gather complete at once, empty") {
  auto v = weave::when_all(std::vector<weave::future<int>>{});
  REQUIRE(v.done());
  CHECK(v.get().empty());
  auto g = weave::gather(std::vector<weave::future<int>>{});
  REQUIRE(g.done());
  CHECK(g.get().empty());
  CHECK(weave::when_all().done());
  CHECK(weave::gather().done());
}

TEST_CASE("when_all keeps input order whatever order the inputs complete in") {
  constexpr size_t n = 100;
  std::vector<weave::promise<size_t>> ps(n);
  std::vector<weave::future<size_t>> fs;
  for (auto& p : ps)
    fs.push_back(p.get_future());
  auto all = weave::when_all(fs.begin(), fs.end());
  for (auto i : weave::test::shuffled(n, 7))
    ps[i].set_value(i * 10);
  auto rs = all.get();
  REQUIRE(rs.size() == n);
  for (size_t i = 0; i < n; ++i) {
    REQUIRE(rs[i]);
    CHECK(*rs[i] == i * 10);
  }
}

TEST_CASE("16 threads completing 1000 promises in random order: when_all and "
          "gather see every outcome once, in input order") {
  auto seed = std::random_device{}();
  INFO("seed " << seed);
  std::vector<weave::promise<size_t>> ps(racing_promises);
  std::vector<weave::promise<size_t>> qs(racing_promises);
  std::vector<weave::future<size_t>> fs;
  std::vector<weave::future<size_t>> gs;
  for (size_t i = 0; i < racing_promises; ++i) {
    fs.push_back(ps[i].get_future());
    gs.push_back(qs[i].get_future());
  }
  std::atomic<int> runs{0};
  auto all = weave::when_all(std::move(fs)).then(
    [&](weave::result<std::vector<weave::result<size_t>>>& r) {
      ++runs;
      return std::move(*r);
    });
  auto gathered = weave::gather(std::move(gs));
  weave::test::complete_racing(ps, weave::test::random_shares(seed),
                               failing_every);
  for (size_t i = 0; i < racing_promises; ++i) // never fails: all values
    qs[i].set_value(i);
  auto rs = all.get();
  CHECK(runs == 1);
  REQUIRE(rs.size() == racing_promises);
  size_t values = 0;
  size_t errors = 0;
  for (size_t i = 0; i < racing_promises; ++i) {
    if (i % failing_every == 0) {
      REQUIRE_FALSE(rs[i]);
      CHECK(weave::render(rs[i].error())
            == "weave::job_failed: " + std::to_string(i));
      ++errors;
    } else {
      REQUIRE(rs[i]);
      CHECK(*rs[i] == i);
      ++values;
    }
  }
  CHECK(errors == (racing_promises + failing_every - 1) / failing_every);
  CHECK(values + errors == racing_promises);
  auto vs = gathered.get();
  REQUIRE(vs.size() == racing_promises);
  for (size_t i = 0; i < racing_promises; ++i)
    CHECK(vs[i] == i);
}

TEST_CASE("a broken promise among the inputs reads broken_promise in its "
          "slot") {
  weave::promise<int> kept;
  auto all = [&] {
    weave::promise<int> dropped;
    return weave::when_all(kept.get_future(), dropped.get_future());
  }();
  CHECK_FALSE(all.done());
  kept.set_value(3);
  auto [a, b] = all.get();
  REQUIRE(a);
  CHECK(*a == 3);
  REQUIRE_FALSE(b);
  CHECK(weave::is(b.error(), weave::errc::broken_promise));
}

TEST_CASE("gather fails fast with the first error while the others are still "
          "pending") {
  weave::promise<int> first;
  weave::promise<std::string> failing;
  weave::promise<int> last;
  auto g = weave::gather(first.get_future(), failing.get_future(),
                         last.get_future());
  failing.set_error(weave::make_error(weave::errc::io_error, "disk gone"));
  // The continuation runs on the completing thread: done before set_error
  // returned, while the other two are still pending.
  REQUIRE(g.done());
  CHECK(message_of([&] { g.get(); }) == "weave::io_error: disk gone");
  // The others' values arrive later, are taken and destroyed, not kept.
  std::atomic<int> destroyed{0};
  weave::promise<std::shared_ptr<weave::test::on_destroy>> tracked;
  auto g2 = weave::gather(tracked.get_future(), failing.get_future());
  REQUIRE(g2.done());
  tracked.set_value(std::make_shared<weave::test::on_destroy>(
    [&destroyed] { ++destroyed; }));
  CHECK(destroyed == 1);
  first.set_value(1);
  last.set_value(2);
}

TEST_CASE("gather reports the first error to arrive, not the first in input "
          "order") {
  std::vector<weave::promise<int>> ps(3);
  std::vector<weave::future<int>> fs;
  for (auto& p : ps)
    fs.push_back(p.get_future());
  auto g = weave::gather(fs);
  ps[2].set_error(weave::make_error(weave::errc::timeout, "third"));
  ps[0].set_error(weave::make_error(weave::errc::closed, "first"));
  ps[1].set_value(1);
  CHECK(message_of([&] { g.get(); }) == "weave::timeout: third");
}

TEST_CASE("gather holds every value in order; void inputs hold caf::unit") {
  weave::promise<void> v;
  auto g = weave::gather(weave::make_ready_future(std::string{"x"}),
                         v.get_future(), weave::make_ready_future(2));
  CHECK_FALSE(g.done());
  v.set_value();
  auto [s, u, i] = g.get();
  CHECK(s == "x");
  CHECK(u == caf::unit);
  CHECK(i == 2);
  std::vector<weave::future<void>> vs{weave::make_ready_future(),
                                      weave::make_ready_future()};
  CHECK(weave::gather(vs).get().size() == 2);
}

TEST_CASE("an invalid future among the inputs is refused with "
          "invalid_argument naming its position, and nothing is consumed") {
  auto ready = weave::make_ready_future(5);
  std::vector<weave::future<int>> fs{ready, ready, weave::future<int>{}};
  CHECK(message_of([&] { weave::when_all(fs); })
        == "weave::invalid_argument: when_all: the future at position 2 is "
           "invalid (default-constructed or moved from)");
  CHECK(code_of([&] { weave::gather(fs); }) == weave::errc::invalid_argument);
  CHECK(message_of([&] { weave::gather(ready, weave::future<int>{}); })
          .find("gather: the future at position 1 is invalid")
        != std::string::npos);
  CHECK(ready.get() == 5); // the refusals took nothing
}

TEST_CASE("a consumed future among the inputs is refused with "
          "already_retrieved naming its position") {
  auto used = weave::make_ready_future(1);
  CHECK(used.get() == 1);
  auto fresh = weave::make_ready_future(2);
  auto msg = message_of([&] { weave::when_all(fresh, used); });
  CHECK(msg.find("weave::already_retrieved: when_all: the future at position 1 "
                 "was already consumed")
        == 0);
  CHECK(fresh.get() == 2);
  // An error is never consumed: it reads the same again.
  auto failed = weave::internal::failed_future<int>(
    weave::make_error(weave::errc::closed));
  CHECK_FALSE(failed.get_result());
  auto [r] = weave::when_all(failed).get();
  CHECK(weave::is(r.error(), weave::errc::closed));
  // A pending input someone `then`-ed first: that continuation takes the
  // value, the slot says so.
  weave::promise<int> p;
  auto f = p.get_future();
  auto taken = f.then([](weave::result<int> x) { return *x; });
  auto all = weave::when_all(f);
  p.set_value(9);
  CHECK(taken.get() == 9);
  auto [slot] = all.get();
  CHECK(weave::is(slot.error(), weave::errc::already_retrieved));
}

TEST_CASE("cancel on the when_all result completes only the result; the "
          "inputs are not cancelled and their values are released") {
  weave::promise<std::shared_ptr<weave::test::on_destroy>> p;
  auto input = p.get_future();
  std::atomic<int> destroyed{0};
  auto all = weave::when_all(input);
  CHECK(all.cancel());
  CHECK(code_of([&] { all.get(); }) == weave::errc::cancelled);
  CHECK_FALSE(input.done());
  CHECK(p.set_value(std::make_shared<weave::test::on_destroy>(
    [&destroyed] { ++destroyed; })));
  CHECK(destroyed == 1);
  CHECK_FALSE(all.cancel()); // already complete
}

TEST_CASE("a continuation of the result may call when_all and get on "
          "finished futures without deadlock") {
  weave::promise<int> a;
  weave::promise<int> b;
  auto done = weave::when_all(a.get_future(), b.get_future())
                .then([](weave::result<std::tuple<weave::result<int>,
                                                  weave::result<int>>>& r) {
                  auto& [x, y] = *r;
                  auto inner = weave::when_all(weave::make_ready_future(*x),
                                               weave::make_ready_future(*y));
                  auto [ix, iy] = inner.get();
                  auto sum = weave::gather(weave::make_ready_future(*ix),
                                           weave::make_ready_future(*iy))
                               .then([](auto& t) {
                                 return std::get<0>(*t) + std::get<1>(*t);
                               });
                  return sum.get();
                });
  std::thread setter{[&] { b.set_value(2); }};
  a.set_value(40);
  setter.join();
  CHECK(done.get() == 42);
}

TEST_CASE("dropping every handle before completion leaks nothing and "
          "destroys each value once") {
  constexpr size_t n = 8;
  std::atomic<int> destroyed{0};
  using item = std::shared_ptr<weave::test::on_destroy>;
  std::vector<weave::promise<item>> ps(n);
  {
    std::vector<weave::future<item>> fs;
    for (auto& p : ps)
      fs.push_back(p.get_future());
    weave::when_all(fs);
  }
  {
    std::vector<weave::future<item>> fs;
    weave::promise<item> other; // a second set, gathered, never completed
    fs.push_back(other.get_future());
    weave::gather(fs);
  }
  for (size_t i = 0; i < n / 2; ++i)
    ps[i].set_value(
      std::make_shared<weave::test::on_destroy>([&destroyed] { ++destroyed; }));
  ps.clear(); // the rest break: the collector completes and goes away
  CHECK(destroyed == static_cast<int>(n / 2));
}

TEST_CASE("when_all inside a loop: its continuation runs in the loop") {
  weave::runtime rt;
  weave::loop lp{rt, "compose-loop"};
  auto f = lp.submit([](weave::loop_context& cx) {
    auto a = cx.offload([] { return 20; });
    auto b = cx.offload([] { return 22; });
    return weave::when_all(a, b).then(
      [](weave::result<std::tuple<weave::result<int>, weave::result<int>>>&
           r) {
        auto& [x, y] = *r;
        return std::to_string(*x + *y) + "@" + weave::this_thread_name();
      });
  });
  CHECK(f.get() == "42@compose-loop");
}

TEST_CASE("an actor combines pool futures: gather through offload, and a "
          "then that messages the actor") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 2, "compose"};
  caf::scoped_actor test{rt.system()};
  caf::actor reply = test;
  auto* pp = &pool;
  rt.system().spawn([pp, reply](caf::event_based_actor* self) {
    auto a = pp->submit([] { return 1; });
    auto b = pp->submit([] { return 2; });
    // The actor's thread never blocks: a pool thread waits on the gather.
    weave::offload(self, [g = weave::gather(a, b)]() mutable {
      auto [x, y] = g.get();
      return x + y;
    }).then([=](int sum) {
      auto c = pp->submit([] { return 10; });
      caf::actor me = caf::actor_cast<caf::actor>(self);
      weave::when_all(c).then([me, sum](auto& r) {
        caf::anon_send(me, sum + *std::get<0>(*r));
      });
    });
    self->become([=](int total) {
      self->send(reply, "total " + std::to_string(total) + " in "
                          + weave::this_thread_name().substr(0, 12));
      self->quit();
    });
  });
  std::string out = "<no answer>";
  test->receive([&](std::string& s) { out = s; },
                caf::after(weave::test::patience) >> [] {});
  CHECK(out == "total 13 in weave-sched-");
}

TEST_CASE("when a loop stops, a when_all of its pending futures completes "
          "with shut_down in every slot") {
  weave::runtime rt;
  weave::loop lp{rt, "stopping-loop"};
  auto a = lp.submit([](weave::loop_context& cx) { return cx.sleep(1h); });
  auto b = lp.submit([](weave::loop_context& cx) { return cx.sleep(1h); });
  auto all = weave::when_all(std::vector<weave::future<void>>{a, b});
  auto g = weave::gather(a, b);
  lp.stop();
  lp.join();
  auto rs = all.get();
  REQUIRE(rs.size() == 2u);
  CHECK(weave::is(rs[0].error(), weave::errc::shut_down));
  CHECK(weave::is(rs[1].error(), weave::errc::shut_down));
  CHECK(code_of([&] { g.get(); }) == weave::errc::shut_down);
}
