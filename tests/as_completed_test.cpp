// as_completed: every outcome handed out exactly once, in completion order,
// with its index; blocking next/next_for with weave's timeout and
// must-not-block rules; for_each that never runs the handler on two threads
// at once; no user code under the queue's lock; use from an actor.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::latch;

namespace {

/// Threads completing promises at once in the racing tests.
constexpr size_t racing_threads = 16;

/// Promises those threads complete.
constexpr size_t racing_promises = 1000;

/// A wait that must time out (nothing will complete meanwhile).
constexpr auto short_wait = 10ms;

/// Creates the condition "a thread is blocked in next()" (nothing waits for
/// it: the test holds whether or not the thread got there first).
constexpr auto block_delay = 20ms;

/// Pool jobs the actor test waits for.
constexpr int jobs = 8;

template <class F>
weave::errc code_of(F&& fn) {
  try {
    fn();
  } catch (const weave::exception& e) {
    return e.code();
  }
  return weave::errc{};
}

template <class F>
std::string message_of(F&& fn) {
  try {
    fn();
  } catch (const weave::exception& e) {
    return e.what();
  }
  return "";
}

template <class T>
std::vector<weave::future<T>> futures_of(std::vector<weave::promise<T>>& ps) {
  std::vector<weave::future<T>> fs;
  for (auto& p : ps)
    fs.push_back(p.get_future());
  return fs;
}

/// Which thread completes which promise: a random split of all of them.
std::vector<std::vector<size_t>> random_shares(unsigned seed) {
  std::vector<size_t> order(racing_promises);
  std::iota(order.begin(), order.end(), size_t{0});
  std::shuffle(order.begin(), order.end(), std::mt19937{seed});
  std::vector<std::vector<size_t>> shares(racing_threads);
  for (size_t k = 0; k < order.size(); ++k)
    shares[k % racing_threads].push_back(order[k]);
  return shares;
}

/// Completes promise `i` with `i`, each thread its share in its order, all
/// released at once.
void complete_racing(std::vector<weave::promise<size_t>>& ps,
                     const std::vector<std::vector<size_t>>& shares) {
  latch go{1};
  std::vector<std::thread> threads;
  for (auto& share : shares)
    threads.emplace_back([&] {
      go.wait();
      for (auto i : share)
        ps[i].set_value(i);
    });
  go.count_down();
  for (auto& th : threads)
    th.join();
}

/// True if every thread's share appears in `seen` in the thread's order
/// (a thread completes its promises one after the other, so the queue must
/// see them in that order).
bool keeps_each_threads_order(const std::vector<size_t>& seen,
                              const std::vector<std::vector<size_t>>& shares) {
  std::vector<size_t> rank(racing_promises);
  for (size_t k = 0; k < seen.size(); ++k)
    rank[seen[k]] = k;
  for (auto& share : shares)
    for (size_t k = 1; k < share.size(); ++k)
      if (rank[share[k - 1]] > rank[share[k]])
        return false;
  return true;
}

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
  std::thread racer{[&] { complete_racing(ps, shares); }};
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
  complete_racing(ps, shares);
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
    for (int i = 0; i < jobs; ++i)
      fs.push_back(pp->submit([i] { return i * i; }));
    caf::actor me = caf::actor_cast<caf::actor>(self);
    weave::as_completed(std::move(fs))
      .for_each([me](weave::completion<int> c) {
        caf::anon_send(me, static_cast<int>(c.index), *c.outcome);
      });
    auto got = std::make_shared<std::vector<int>>(jobs, -1);
    auto n = std::make_shared<int>(0);
    self->become([=](int index, int square) {
      (*got)[static_cast<size_t>(index)] = square;
      if (++*n == jobs) {
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
