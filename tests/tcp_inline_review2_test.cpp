// Second review of the inline I/O turns, after the review fixes of e3651e1
// (the standby poller, the I/O thread in dumps and metrics, the shutdown's
// thread exit patience): cases that fail on bf278ce.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <utility>

#include "caf/scoped_actor.hpp"

#include "runtime/prometheus.hpp"
#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_inline_support.hpp"
#include "tests/tcp_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using namespace weave::test::tcp;
using weave::test::patience;

namespace {

using count_atom = caf::atom_constant<caf::atom("r2count")>;

/// Where a round's handler ran and what it got.
struct outcome {
  std::string thread;
  std::string result;
};

} // namespace

TEST_CASE("review2: an actor that a handler stuck on the I/O thread made "
          "runnable gets a thread, as when the handler is stuck on a "
          "worker") {
  // The handler sends to `helper` (idle, so the send makes it runnable
  // through the sender's execution unit), then waits synchronously for
  // helper's answer (a scoped_actor's request, which CAF does not refuse).
  // On a scheduler worker, helper sits in that worker's queue and another
  // worker steals it (the watchdog wakes a thief). On the I/O thread the
  // io_unit keeps helper as the chain's next job (`next_`), which only the
  // stuck thread itself can run: the standby poller rescues sockets'
  // readiness, not that job, so the wait runs into its timeout.
  int on_io = 0;
  for (int round = 0; round < 50 && on_io == 0; ++round) {
    CAPTURE(round);
    raw_peer p{turns_config(8)};
    auto sys = &p.rt.system();
    auto helper = sys->spawn([](caf::event_based_actor*) -> caf::behavior {
      auto n = std::make_shared<int>(0);
      return {[n](int x) { *n += x; }, [n](count_atom) { return *n; }};
    });
    std::promise<outcome> got;
    auto fut = got.get_future();
    read_then(p, [&got, sys, helper](caf::event_based_actor* self,
                                     const std::string&) {
      outcome out;
      out.thread = weave::this_thread_name();
      self->send(helper, 1);
      {
        caf::scoped_actor s{*sys};
        s->request(helper, std::chrono::seconds{3}, count_atom::value)
          .receive([&](int n) { out.result = std::to_string(n); },
                   [&](caf::error& err) {
                     out.result = "error: " + weave::render(err);
                   });
      }
      got.set_value(out);
      self->quit();
    });
    p.send_all("go\n");
    auto out = take(fut);
    CAPTURE(out.thread);
    // Both places must work; a round on a worker is repeated until one
    // ran on the I/O thread.
    CHECK(out.result == "1");
    if (out.thread == "weave-tcp")
      ++on_io;
    caf::anon_send_exit(helper, caf::exit_reason::user_shutdown);
  }
  REQUIRE(on_io == 1);
}

TEST_CASE("review2: with CAF's own scheduler policy (no blocking detector), "
          "a handler's synchronous wait for another connection's read gets "
          "it") {
  // The standby poller is started by the blocking detector's watchdog; with
  // `scheduler.policy = sharing` weave makes no detector, but the I/O
  // thread still runs turns (the reactor drops only its detector), so the
  // case that the standby fixed (tcp_inline_review_test) is back: the
  // handler holds the readiness it waits for until its request times out.
  int on_io = 0;
  for (int round = 0; round < 50 && on_io == 0; ++round) {
    CAPTURE(round);
    auto cfg = turns_config(8);
    cfg.set("scheduler.policy", caf::atom("sharing"));
    raw_peer p{std::move(cfg)};
    peer_socket c2{p.rt, p.self};
    auto before = c2.stats(p.self).reads_waited;
    std::promise<outcome> got;
    auto fut = got.get_future();
    auto sys = &p.rt.system();
    read_then(p, [&got, sys, c2conn = c2.conn](caf::event_based_actor* self,
                                              const std::string&) {
      outcome out;
      out.thread = weave::this_thread_name();
      {
        caf::scoped_actor s{*sys};
        s->request(c2conn, std::chrono::seconds{3}, read_line_atom::value)
          .receive([&](std::string& line) { out.result = line; },
                   [&](caf::error& err) {
                     out.result = "error: " + weave::render(err);
                   });
      }
      got.set_value(out);
      self->quit();
    });
    p.send_all("first\n");
    REQUIRE(weave::test::eventually(
      [&] { return c2.stats(p.self).reads_waited == before + 1; }));
    REQUIRE(::send(c2.fd, "second\n", 7, MSG_NOSIGNAL) == 7);
    auto out = take(fut);
    CAPTURE(out.thread);
    CHECK(out.result == "second");
    if (out.thread == "weave-tcp")
      ++on_io;
  }
  // No turn runs on the I/O thread without a detector: 50 rounds on
  // workers, each of them checked (with turns there, most rounds' chains
  // would begin on the I/O thread and time out).
  CHECK(on_io <= 1);
  CHECK(on_io == 0);
}

TEST_CASE("review2: the Prometheus text carries the I/O thread's counts "
          "(metrics_snapshot::tcp_io)") {
  // metrics.hpp: the runtime's slow_handlers is the workers' sum plus
  // tcp_io.slow_handlers. The text exports the workers' series and the
  // total, but not tcp_io: its turns and busy time are not exported at all,
  // and the per-thread slow-handler series no longer add up to the total.
  weave::metrics_snapshot s;
  weave::scheduler_worker_metrics w;
  w.index = 0;
  w.resumes = 10;
  s.scheduler.push_back(w);
  s.tcp_io.turns = 7;
  s.tcp_io.busy_ns = 2'000'000'000;
  s.tcp_io.slow_handlers = 1;
  s.slow_handlers = 1;
  auto text = weave::to_prometheus(s);
  INFO(text);
  CHECK(text.find("weave_tcp_io_turns_total 7") != std::string::npos);
  CHECK(text.find("weave_tcp_io_busy_seconds_total 2") != std::string::npos);
  CHECK(text.find("weave_tcp_io_slow_handlers_total 1") != std::string::npos);
}
