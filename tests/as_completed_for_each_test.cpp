// as_completed's for_each: the handler sees every outcome once, in
// completion order, never on two threads at once; no user code under the
// queue's lock; use from an actor and from a loop.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "caf/all.hpp"
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

/// Creates the condition "a thread is blocked in next()" or "a value comes
/// later" (nothing waits for it: each test holds whichever happens first).
constexpr auto block_delay = 20ms;

/// Pool jobs the actor test waits for.
constexpr size_t actor_jobs = 8;

} // namespace

TEST_CASE("16 threads completing 1000 promises: for_each sees each once, in "
          "each thread's order, never on two threads at once") {
  auto seed = std::random_device{}();
  INFO("seed " << seed);
  auto shares = random_shares(seed);
  std::vector<weave::promise<size_t>> ps(racing_promises);
  std::atomic<int> in_handler{0};
  std::atomic<int> max_in_handler{0};
  std::vector<size_t> seen; // written by the handler only
  weave::test::failures bad;
  auto all = weave::as_completed(futures_of(ps))
               .for_each([&](weave::completion<size_t> c) {
                 weave::test::raise_max(max_in_handler, ++in_handler);
                 bad.check(c.outcome && *c.outcome == c.index,
                           "wrong outcome at " + std::to_string(c.index));
                 seen.push_back(c.index);
                 --in_handler;
               });
  weave::test::complete_racing(ps, shares);
  REQUIRE(all.wait_for(weave::test::patience));
  CHECK(all.get_result());
  CHECK(bad.messages() == "");
  CHECK(max_in_handler == 1);
  REQUIRE(seen.size() == racing_promises);
  auto sorted = seen;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
  CHECK(keeps_each_threads_order(seen, shares));
}

TEST_CASE("for_each takes over after next: outcomes there run at once on the "
          "caller, later ones on the completing thread; next is refused "
          "after it") {
  std::vector<weave::promise<int>> ps(4);
  auto q = weave::as_completed(futures_of(ps));
  ps[1].set_value(1);
  ps[2].set_value(2);
  CHECK(q.next()->index == 1u);
  std::vector<std::string> log; // the handler never runs concurrently
  auto me = std::this_thread::get_id();
  auto all = q.for_each([&](const weave::completion<int>& c) {
    log.push_back(std::to_string(c.index)
                  + (std::this_thread::get_id() == me ? "@caller" : "@other"));
  });
  REQUIRE(log.size() == 1u);
  CHECK(log[0] == "2@caller");
  CHECK(code_of([&] { q.next(); }) == weave::errc::invalid_argument);
  CHECK(message_of([&] { q.for_each([](weave::completion<int>) {}); })
        == "weave::invalid_argument: as_completed: for_each() was already "
           "called");
  std::thread other{[&] { ps[3].set_value(3); }};
  other.join();
  CHECK_FALSE(all.done());
  ps[0].set_value(0);
  REQUIRE(all.done());
  CHECK(log == std::vector<std::string>{"2@caller", "3@other", "0@caller"});
}

TEST_CASE("a thread blocked in next is released by for_each with "
          "invalid_argument") {
  weave::promise<int> p;
  auto q = weave::as_completed(std::vector<weave::future<int>>{p.get_future()});
  std::atomic<weave::errc> code{weave::errc{}};
  std::thread waiter{[&] { code = code_of([&] { q.next(); }); }};
  std::this_thread::sleep_for(block_delay); // likely blocked by now
  std::atomic<int> handled{0};
  auto all = q.for_each([&](weave::completion<int>) { ++handled; });
  waiter.join();
  CHECK(code.load() == weave::errc::invalid_argument);
  p.set_value(1);
  CHECK(handled == 1);
  CHECK(all.done());
}

TEST_CASE("a throwing for_each handler still sees every outcome; the future "
          "fails with the first exception") {
  std::vector<weave::promise<int>> ps(3);
  int calls = 0;
  auto all = weave::as_completed(futures_of(ps))
               .for_each([&](weave::completion<int> c) {
                 ++calls;
                 if (c.index != 1)
                   throw std::runtime_error("bad " + std::to_string(c.index));
               });
  ps[2].set_value(2);
  ps[1].set_value(1);
  ps[0].set_value(0);
  CHECK(calls == 3);
  CHECK(weave::render(all.get_result().error()) == "weave::job_failed: bad 2");
}

namespace {

/// The queue that a `probe`'s destructor asks (null: none to ask).
std::atomic<weave::completion_queue<struct probe>*> probed_queue{nullptr};

/// A value whose destructor (also of a moved-from one) calls into the
/// queue that holds it: it would self-deadlock if the queue destroyed or
/// moved values under its lock.
struct probe {
  int value = 0;
  explicit probe(int x) : value(x) {
  }
  probe(probe&&) = default;
  probe& operator=(probe&&) = default;
  ~probe() {
    if (auto* q = probed_queue.load())
      q->remaining();
  }
};

} // namespace

TEST_CASE("no user code runs under the queue's lock: values' destructors, "
          "the handler and the for_each continuation may call into it") {
  std::vector<weave::promise<probe>> ps(3);
  auto q = weave::as_completed(futures_of(ps));
  probed_queue = &q;
  ps[0].set_value(probe{1});
  {
    auto c = q.next();
    CHECK(c->outcome->value == 1);
  }
  std::atomic<size_t> left_seen{99};
  auto* qp = &q;
  auto all = q.for_each([qp, &left_seen](weave::completion<probe> c) {
    left_seen = qp->remaining();
    (void) c;
  });
  auto after = all.then([qp](weave::result<void>) { return qp->remaining(); });
  ps[1].set_value(probe{2});
  ps[2].set_value(probe{3});
  CHECK(left_seen == 0u);
  CHECK(after.get() == 0u);
  probed_queue = nullptr;
}

TEST_CASE("dropping the queue handle early leaks nothing: values not taken "
          "are destroyed, a for_each handler keeps receiving") {
  using item = std::shared_ptr<weave::test::on_destroy>;
  std::atomic<int> destroyed{0};
  auto make = [&destroyed] {
    return std::make_shared<weave::test::on_destroy>([&destroyed] {
      ++destroyed;
    });
  };
  std::vector<weave::promise<item>> ps(3);
  weave::as_completed(futures_of(ps)); // dropped at once
  ps[0].set_value(make());
  ps[1].set_value(make());
  ps.clear(); // the third breaks: every input done, the state goes
  CHECK(destroyed == 2);
  std::vector<weave::promise<int>> qs(2);
  std::atomic<int> handled{0};
  auto all = weave::as_completed(futures_of(qs)).for_each(
    [&handled](weave::completion<int>) { ++handled; });
  qs[0].set_value(1);
  qs[1].set_value(2);
  CHECK(handled == 2);
  CHECK(all.done());
}

TEST_CASE("an actor handles pool jobs in completion order with for_each "
          "sending it one message each") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 4, "completions"};
  caf::scoped_actor test{rt.system()};
  caf::actor reply = test;
  auto* pp = &pool;
  rt.system().spawn([pp, reply](caf::event_based_actor* self) {
    std::vector<weave::future<int>> fs;
    for (int i = 0; i < static_cast<int>(actor_jobs); ++i)
      fs.push_back(pp->submit([i] { return i * i; }));
    caf::actor me = caf::actor_cast<caf::actor>(self);
    weave::as_completed(std::move(fs))
      .for_each([me](weave::completion<int> c) {
        caf::anon_send(me, static_cast<int>(c.index), *c.outcome);
      });
    auto got = std::make_shared<std::vector<int>>(actor_jobs, -1);
    auto n = std::make_shared<size_t>(0);
    self->become([=](int index, int square) {
      (*got)[static_cast<size_t>(index)] = square;
      if (++*n == actor_jobs) {
        std::string out;
        for (auto x : *got)
          out += std::to_string(x) + " ";
        self->send(reply, out + weave::this_thread_name().substr(0, 12));
        self->quit();
      }
    });
  });
  std::string out = "<no answer>";
  test->receive([&](std::string& s) { out = s; },
                caf::after(weave::test::patience) >> [] {});
  CHECK(out == "0 1 4 9 16 25 36 49 weave-sched-");
}

TEST_CASE("for_each inside a loop: outcomes completing in the loop reach the "
          "handler in the loop") {
  weave::runtime rt;
  weave::loop lp{rt, "each-loop"};
  auto f = lp.submit([](weave::loop_context& cx) {
    std::vector<weave::future<size_t>> fs;
    for (size_t i = 0; i < actor_jobs; ++i)
      fs.push_back(cx.offload([i] { return i; }));
    auto seen = std::make_shared<std::vector<std::string>>();
    return weave::as_completed(std::move(fs))
      .for_each([seen](weave::completion<size_t> c) {
        seen->push_back(std::to_string(*c.outcome) + "@"
                        + weave::this_thread_name());
      })
      .then([seen](weave::result<void> r) {
        if (!r)
          return std::vector<std::string>{weave::render(r.error())};
        std::sort(seen->begin(), seen->end());
        return *seen;
      });
  });
  std::vector<std::string> expected;
  for (size_t i = 0; i < actor_jobs; ++i)
    expected.push_back(std::to_string(i) + "@each-loop");
  CHECK(f.get() == expected);
}
