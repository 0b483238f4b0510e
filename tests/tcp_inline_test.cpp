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
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_inline_support.hpp"
#include "tests/tcp_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using namespace weave::test::tcp;
using weave::test::patience;

namespace {

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

} // namespace

TEST_CASE("the actor a readiness answers runs its turn on the I/O thread, "
          "which refuses to block; with tcp-inline-turns = 0 on the "
          "scheduler") {
  for (size_t turns : {size_t{8}, size_t{0}}) {
    CAPTURE(turns);
    raw_peer p{turns_config(turns)};
    int inline_rounds = 0;
    int rounds = turns > 0 ? max_rounds : 5;
    for (int round = 0; round < rounds; ++round) {
      std::promise<seen> got;
      auto fut = got.get_future();
      read_then(p, [&](caf::event_based_actor* self, const std::string& line) {
        got.set_value(here(line));
        self->quit();
      });
      p.send_all("hello\n");
      auto s = take(fut);
      CHECK(s.value == "hello");
      CHECK(s.must_not_block);
      if (on_io_thread(s.thread)) {
        ++inline_rounds;
        break;
      }
      CHECK_MESSAGE(on_scheduler(s.thread), s.thread);
    }
    CHECK(inline_rounds == (turns > 0 ? 1 : 0));
    CHECK(p.rt.slow_handlers() == 0);
  }
}

TEST_CASE("a chain of turns leaves the I/O thread after tcp-inline-turns "
          "turns and goes on on the scheduler") {
  constexpr size_t turns = 4;
  constexpr int rounds = 20;
  raw_peer p{turns_config(turns)};
  struct state {
    std::mutex mtx;
    std::vector<std::string> threads; // one per handler, in order
    std::promise<void> done;
    void record() {
      std::unique_lock<std::mutex> guard{mtx};
      threads.push_back(weave::this_thread_name());
    }
  };
  bool checked = false;
  for (int round = 0; round < max_rounds && !checked; ++round) {
    auto st = std::make_shared<state>();
    auto fut = st->done.get_future();
    // B answers every number with the next one.
    auto b = p.rt.system().spawn(
      [st](caf::event_based_actor* self) -> caf::behavior {
        return {[st, self](int x) {
          st->record();
          if (x + 1 >= rounds)
            self->quit();
          return x + 1;
        }};
      });
    auto ping = std::make_shared<
      std::function<void(caf::event_based_actor*, int)>>();
    *ping = [st, b, ping](caf::event_based_actor* self, int x) {
      if (x >= rounds) {
        st->done.set_value();
        self->quit();
        return;
      }
      self->request(b, caf::infinite, x).then([=](int y) {
        st->record();
        (*ping)(self, y);
      });
    };
    read_then(p, [st, ping](caf::event_based_actor* self, const std::string&) {
      st->record();
      (*ping)(self, 0);
    });
    p.send_all("go\n");
    REQUIRE(fut.wait_for(patience) == std::future_status::ready);
    *ping = nullptr; // breaks the cycle
    std::unique_lock<std::mutex> guard{st->mtx};
    auto& threads = st->threads;
    REQUIRE(threads.size() == 1 + 2 * rounds);
    if (!on_io_thread(threads[0]))
      continue; // the chain began on a worker (see max_rounds)
    checked = true;
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
  CHECK(checked);
}

TEST_CASE("one chain at a time on the I/O thread: of two actors a turn "
          "there wakes, the newest runs next there, the other on the "
          "scheduler") {
  raw_peer p{turns_config(8)};
  auto spawn_recorder = [&](std::shared_ptr<std::promise<seen>> out) {
    return p.rt.system().spawn(
      [out](caf::event_based_actor* self) -> caf::behavior {
        return {[out, self](const std::string& what) {
          out->set_value(here(what));
          self->quit();
        }};
      });
  };
  bool checked = false;
  for (int round = 0; round < max_rounds && !checked; ++round) {
    auto first = std::make_shared<std::promise<seen>>();
    auto second = std::make_shared<std::promise<seen>>();
    auto reader = std::make_shared<std::promise<std::string>>();
    auto f1 = first->get_future();
    auto f2 = second->get_future();
    auto fr = reader->get_future();
    auto one = spawn_recorder(first);
    auto two = spawn_recorder(second);
    read_then(p, [=](caf::event_based_actor* self, const std::string& line) {
      reader->set_value(weave::this_thread_name());
      self->send(one, line + " 1");
      self->send(two, line + " 2");
      self->quit();
    });
    p.send_all("wake\n");
    auto s1 = take(f1);
    auto s2 = take(f2);
    CHECK(s1.value == "wake 1");
    CHECK(s2.value == "wake 2");
    if (!on_io_thread(take(fr)))
      continue; // the chain began on a worker (see max_rounds)
    checked = true;
    CHECK_MESSAGE(on_scheduler(s1.thread), s1.thread);
    CHECK_MESSAGE(on_io_thread(s2.thread), s2.thread);
  }
  CHECK(checked);
}

TEST_CASE("a handler that blocks on the I/O thread is reported as holding "
          "the TCP I/O thread") {
  auto cfg = turns_config(8);
  cfg.set("weave.blocking-threshold", caf::timespan{50ms});
  // Every report, by actor: another handler whose thread stopped past the
  // short threshold (a sanitizer on a busy machine) is reported too,
  // rightly. (Before the runtime: they outlive its callbacks.)
  std::mutex mtx;
  std::vector<weave::slow_handler_event> reports;
  raw_peer p{std::move(cfg)};
  p.rt.on_slow_handler([&](const weave::slow_handler_event& ev) {
    std::unique_lock<std::mutex> guard{mtx};
    reports.push_back(ev);
  });
  auto report_of = [&](caf::actor_id id) {
    std::unique_lock<std::mutex> guard{mtx};
    for (auto& ev : reports)
      if (ev.actor == id)
        return std::optional<weave::slow_handler_event>{ev};
    return std::optional<weave::slow_handler_event>{};
  };
  bool checked = false;
  for (int round = 0; round < max_rounds && !checked; ++round) {
    auto released = std::make_shared<weave::test::latch>(1);
    auto where = std::make_shared<std::promise<std::pair<std::string,
                                                         caf::actor_id>>>();
    auto fw = where->get_future();
    read_then(p, [=](caf::event_based_actor* self, const std::string&) {
      auto name = weave::this_thread_name();
      where->set_value({name, self->id()});
      // The bug being reported: a blocking wait inside a handler (only
      // where the round needs it).
      if (on_io_thread(name))
        released->wait(patience);
      self->quit();
    });
    p.send_all("block\n");
    auto [name, id] = take(fw);
    if (!on_io_thread(name))
      continue; // the chain began on a worker (see max_rounds)
    checked = true;
    std::optional<weave::slow_handler_event> ev;
    CHECK(weave::test::eventually([&] {
      ev = report_of(id);
      return ev.has_value();
    }));
    released->count_down();
    REQUIRE(ev);
    CHECK(ev->worker == p.rt.system().scheduler().num_workers());
    CHECK(ev->held >= 50ms);
    CHECK(p.rt.slow_handlers() >= 1);
  }
  CHECK(checked);
}

TEST_CASE("an answer delivered from a plain thread by an actor whose last "
          "turn ran on the I/O thread reaches its requester") {
  raw_peer p{turns_config(8)};
  bool checked = false;
  for (int round = 0; round < max_rounds && !checked; ++round) {
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
    // The reader, woken by the readiness, asks E: both turns run on the
    // I/O thread (and E's context stays the I/O thread's unit).
    std::promise<std::string> reader_ran_on;
    auto reader_where = reader_ran_on.get_future();
    read_then(p, [&, e](caf::event_based_actor* self, const std::string&) {
      self->request(e, caf::infinite, 21).then([&, self](int y) {
        answered.set_value({y, weave::this_thread_name()});
        self->quit();
      });
      reader_ran_on.set_value(weave::this_thread_name());
    });
    p.send_all("ask\n");
    bool began_inline = on_io_thread(take(reader_where));
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
    checked = began_inline;
  }
  CHECK(checked);
}

TEST_CASE("a shutdown that meets a turn still running on the I/O thread "
          "keeps the actor system alive under it") {
  bool checked = false;
  for (int round = 0; round < max_rounds && !checked; ++round) {
    weave::test::latch entered{1};
    weave::test::latch release{1};
    weave::test::latch finished{1};
    std::string where;
    weave::shutdown_report report;
    {
      raw_peer p{turns_config(8)};
      read_then(p, [&](caf::event_based_actor* self, const std::string&) {
        where = weave::this_thread_name();
        entered.count_down();
        if (on_io_thread(where))
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
      if (!on_io_thread(where)) {
        REQUIRE(finished.wait());
        continue; // the chain began on a worker (see max_rounds)
      }
      checked = true;
      auto t0 = std::chrono::steady_clock::now();
      report = p.rt.shutdown(100ms);
      CHECK(std::chrono::steady_clock::now() - t0
            < 100ms + weave::runtime::shutdown_margin);
      MESSAGE(report.to_string());
    }
    CHECK(report.threads_abandoned >= 1);
    release.count_down();
    // The turn ends and its next message is handled: on the I/O thread
    // (the chain) or a worker of the system the shutdown left alive.
    CHECK(finished.wait());
  }
  CHECK(checked);
}
