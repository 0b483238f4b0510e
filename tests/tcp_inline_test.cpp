// actors/tcp: the I/O thread runs the turns of the actors a readiness wakes
// (actors/internal/io_unit.hpp). Where each turn runs (thread names), the
// turn budget (`weave.tcp-inline-turns`), one chain at a time, the blocking
// detector's view of the I/O thread, answers delivered from other threads
// by actors whose last turn ran there, and a shutdown that meets a turn
// still running there.
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using namespace weave::test::tcp;
using weave::test::patience;

namespace {

weave::runtime_config turns_config(size_t turns) {
  auto cfg = weave::test::io_config();
  cfg.set("weave.tcp-inline-turns", turns);
  return cfg;
}

/// Where a handler ran, and whether that thread refuses to block.
struct seen {
  std::string value;
  std::string thread;
  bool must_not_block = false;
};

seen here(std::string value) {
  return {std::move(value), weave::this_thread_name(),
          weave::this_thread_must_not_block()};
}

bool on_io_thread(const std::string& name) {
  return name == "weave-tcp";
}

bool on_scheduler(const std::string& name) {
  return name.rfind("weave-sched-", 0) == 0;
}

/// Spawns an actor that asks `p.conn` for a line and runs `then` with it in
/// its answer's handler; returns once the read waits for readiness (so its
/// answer comes from a readiness, not from bytes already there).
template <class F>
caf::actor read_then(raw_peer& p, F then) {
  auto before = p.stats().reads_waited;
  auto a = p.rt.system().spawn(
    [conn = p.conn, then](caf::event_based_actor* self) {
      self->request(conn, caf::infinite, read_line_atom::value)
        .then([=](std::string& line) mutable { then(self, line); },
              [=](caf::error& err) mutable {
                then(self, "error: " + weave::render(err));
              });
    });
  REQUIRE(weave::test::eventually(
    [&] { return p.stats().reads_waited == before + 1; }));
  return a;
}

template <class T>
T take(std::future<T>& f) {
  REQUIRE(f.wait_for(patience) == std::future_status::ready);
  return f.get();
}

} // namespace

TEST_CASE("the actor a readiness answers runs its turn on the I/O thread, "
          "which refuses to block; with tcp-inline-turns = 0 on the "
          "scheduler") {
  for (size_t turns : {size_t{8}, size_t{0}}) {
    CAPTURE(turns);
    raw_peer p{turns_config(turns)};
    std::promise<seen> got;
    auto fut = got.get_future();
    read_then(p, [&](caf::event_based_actor* self, const std::string& line) {
      got.set_value(here(line));
      self->quit();
    });
    p.send_all("hello\n");
    auto s = take(fut);
    CHECK(s.value == "hello");
    if (turns > 0)
      CHECK_MESSAGE(on_io_thread(s.thread), s.thread);
    else
      CHECK_MESSAGE(on_scheduler(s.thread), s.thread);
    CHECK(s.must_not_block);
    CHECK(p.rt.slow_handlers() == 0);
  }
}

TEST_CASE("a chain of turns leaves the I/O thread after tcp-inline-turns "
          "turns and goes on on the scheduler") {
  constexpr size_t turns = 4;
  constexpr int rounds = 20;
  raw_peer p{turns_config(turns)};
  std::mutex mtx;
  std::vector<std::string> threads; // one per handler, in order
  std::promise<void> done;
  auto record = [&] {
    std::unique_lock<std::mutex> guard{mtx};
    threads.push_back(weave::this_thread_name());
  };
  // B answers every number with the next one.
  auto b = p.rt.system().spawn([&](caf::event_based_actor*) -> caf::behavior {
    return {[&](int x) {
      record();
      return x + 1;
    }};
  });
  std::function<void(caf::event_based_actor*, int)> ping;
  ping = [&](caf::event_based_actor* self, int x) {
    if (x >= rounds) {
      done.set_value();
      self->quit();
      return;
    }
    self->request(b, caf::infinite, x).then([&, self](int y) {
      record();
      ping(self, y);
    });
  };
  read_then(p, [&](caf::event_based_actor* self, const std::string&) {
    record();
    ping(self, 0);
  });
  auto fut = done.get_future();
  p.send_all("go\n");
  REQUIRE(fut.wait_for(patience) == std::future_status::ready);
  std::unique_lock<std::mutex> guard{mtx};
  REQUIRE(threads.size() == 1 + 2 * rounds);
  // The connection's turn is the first of the budget; then the reader's
  // (its answer), B's, the reader's: `turns - 1` handlers, then the next
  // turn goes to the scheduler and the chain stays there.
  for (size_t i = 0; i < threads.size(); ++i) {
    CAPTURE(i);
    if (i < turns - 1)
      CHECK_MESSAGE(on_io_thread(threads[i]), threads[i]);
    else
      CHECK_MESSAGE(on_scheduler(threads[i]), threads[i]);
  }
}

TEST_CASE("one chain at a time on the I/O thread: of two actors a turn "
          "there wakes, the newest runs next there, the other on the "
          "scheduler") {
  raw_peer p{turns_config(8)};
  std::promise<seen> first;
  std::promise<seen> second;
  auto f1 = first.get_future();
  auto f2 = second.get_future();
  auto spawn_recorder = [&](std::promise<seen>& out) {
    return p.rt.system().spawn(
      [&out](caf::event_based_actor* self) -> caf::behavior {
        return {[&out, self](const std::string& what) {
          out.set_value(here(what));
          self->quit();
        }};
      });
  };
  auto one = spawn_recorder(first);
  auto two = spawn_recorder(second);
  read_then(p, [=](caf::event_based_actor* self, const std::string& line) {
    self->send(one, line + " 1");
    self->send(two, line + " 2");
    self->quit();
  });
  p.send_all("wake\n");
  auto s1 = take(f1);
  auto s2 = take(f2);
  CHECK(s1.value == "wake 1");
  CHECK(s2.value == "wake 2");
  CHECK_MESSAGE(on_scheduler(s1.thread), s1.thread);
  CHECK_MESSAGE(on_io_thread(s2.thread), s2.thread);
}

TEST_CASE("a handler that blocks on the I/O thread is reported as holding "
          "the TCP I/O thread") {
  auto cfg = turns_config(8);
  cfg.set("weave.blocking-threshold", caf::timespan{50ms});
  raw_peer p{std::move(cfg)};
  std::promise<weave::slow_handler_event> report;
  auto reported = report.get_future();
  std::once_flag once;
  p.rt.on_slow_handler([&](const weave::slow_handler_event& ev) {
    std::call_once(once, [&] { report.set_value(ev); });
  });
  weave::test::latch released{1};
  std::promise<caf::actor_id> blocker;
  auto blocker_id = blocker.get_future();
  read_then(p, [&](caf::event_based_actor* self, const std::string&) {
    blocker.set_value(self->id());
    // The bug being reported: a blocking wait inside a handler.
    released.wait(patience);
    self->quit();
  });
  p.send_all("block\n");
  auto ev = take(reported);
  released.count_down();
  CHECK(ev.actor == take(blocker_id));
  CHECK(ev.worker == p.rt.system().scheduler().num_workers());
  CHECK(ev.held >= 50ms);
  CHECK(p.rt.slow_handlers() >= 1);
}

TEST_CASE("an answer delivered from a plain thread by an actor whose last "
          "turn ran on the I/O thread reaches its requester") {
  raw_peer p{turns_config(8)};
  weave::test::latch go{1};
  std::thread deliverer;
  std::mutex mtx;
  std::promise<std::pair<int, std::string>> answered;
  auto fut = answered.get_future();
  // E answers a request later, from a plain thread, through its promise.
  auto e = p.rt.system().spawn(
    [&](caf::event_based_actor* self) -> caf::behavior {
      return {[&, self](int x) {
        auto rp = self->make_response_promise();
        std::unique_lock<std::mutex> guard{mtx};
        deliverer = std::thread{[&go, rp, x]() mutable {
          go.wait(patience);
          rp.deliver(x * 2);
        }};
        return rp;
      }};
    });
  // Q, woken by the readiness's chain, asks E: both turns run on the I/O
  // thread (E's context stays the I/O thread's unit).
  std::promise<std::string> e_ran_on;
  auto e_where = e_ran_on.get_future();
  read_then(p, [&, e](caf::event_based_actor* self, const std::string&) {
    self->request(e, caf::infinite, 21)
      .then([&, self](int y) {
        answered.set_value({y, weave::this_thread_name()});
        self->quit();
      });
    e_ran_on.set_value(weave::this_thread_name());
  });
  p.send_all("ask\n");
  CHECK(on_io_thread(take(e_where)));
  REQUIRE(weave::test::eventually([&] {
    std::unique_lock<std::mutex> guard{mtx};
    return deliverer.joinable();
  }));
  go.count_down();
  {
    std::unique_lock<std::mutex> guard{mtx};
    deliverer.join();
  }
  auto [y, where] = take(fut);
  CHECK(y == 42);
  CHECK_MESSAGE(on_scheduler(where), where);
}

TEST_CASE("a shutdown that meets a turn still running on the I/O thread "
          "keeps the actor system alive under it") {
  weave::test::latch entered{1};
  weave::test::latch release{1};
  weave::test::latch finished{1};
  weave::shutdown_report report;
  {
    raw_peer p{turns_config(8)};
    read_then(p, [&](caf::event_based_actor* self, const std::string&) {
      entered.count_down();
      release.wait(patience); // a blocking handler, past the deadline
      // Touches the actor system after the shutdown gave up on this
      // thread: it must still be there.
      self->send(self, std::string{"after"});
      self->become([&, self](const std::string&) {
        finished.count_down();
        self->quit();
      });
    });
    p.send_all("hold\n");
    REQUIRE(entered.wait());
    auto t0 = std::chrono::steady_clock::now();
    report = p.rt.shutdown(100ms);
    CHECK(std::chrono::steady_clock::now() - t0
          < 100ms + weave::runtime::shutdown_margin);
    MESSAGE(report.to_string());
  }
  CHECK(report.threads_abandoned >= 1);
  release.count_down();
  // The turn ends and its next message is handled: on the I/O thread (the
  // chain) or a worker of the system the shutdown left alive.
  CHECK(finished.wait());
}
