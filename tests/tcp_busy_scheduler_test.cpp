// actors/tcp under a busy scheduler: readiness is delivered by the
// reactor's own thread, so it must reach a connection even while every
// scheduler worker is kept busy (any design that moves polling onto idle
// workers must keep this): an echo that needs readiness on each round must
// keep answering.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_support.hpp"

using namespace weave::actors;
using namespace weave::test::tcp;
using weave::test::patience;

namespace {

/// How long one busy handler spins before it re-sends to itself.
constexpr auto busy_turn = std::chrono::microseconds{200};

/// Round trips that each wait for readiness, before and while the
/// workers are busy.
constexpr size_t warm_rounds = 3;
constexpr size_t rounds = 20;

} // namespace

TEST_CASE("readiness reaches a TCP connection while every scheduler worker "
          "runs handlers that re-send to themselves") {
  auto cfg = weave::test::io_config();
  // One message per turn: the busy actors take turns with the others on
  // every worker instead of holding a worker for good.
  cfg.set("scheduler.max-throughput", size_t{1});
  weave::runtime rt{std::move(cfg)};
  caf::scoped_actor self{rt.system()};
  auto listener = spawn_tcp_listener(rt, "127.0.0.1", 0);
  auto port = ask<uint16_t>(self, listener, tcp_port_atom::value);
  REQUIRE(port);
  auto client = spawn_tcp_connect(rt, "127.0.0.1", *port);
  auto server = ask<tcp_connection>(self, listener, accept_atom::value);
  REQUIRE(server);
  REQUIRE(ask<std::string>(self, client, connected_atom::value));
  auto round = [&](size_t i, uint64_t waited) {
    auto ping = "ping " + std::to_string(i);
    // The read comes first and waits for readiness (the stats, asked
    // after it, show it waited): its answer needs the poll set watched.
    auto pending = self->request(*server, patience, read_some_atom::value);
    auto st = ask<tcp_stats>(self, *server, tcp_stats_atom::value);
    REQUIRE(st);
    REQUIRE(st->reads_waited == waited + 1);
    auto n = ask<uint64_t>(self, client, tcp_write_atom::value, ping);
    REQUIRE_MESSAGE(n, text(n.error()));
    std::string got;
    pending.receive([&](std::string& data) { got = std::move(data); },
                    [&](caf::error& err) { FAIL(text(err)); });
    CHECK(got == ping);
  };
  // Idle workers first: one of them takes the poller role (the reactor's
  // thread stops watching the poll set meanwhile).
  for (size_t i = 0; i < warm_rounds; ++i)
    round(i, i);
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto spins = std::make_shared<std::atomic<uint64_t>>(0);
  struct stopper {
    std::shared_ptr<std::atomic<bool>> flag;
    ~stopper() {
      flag->store(true); // also when a check above throws
    }
  } stop_busy{stop};
  // Twice as many busy actors as workers: no worker's queue runs dry, so
  // no worker parks (and none polls the I/O set).
  auto busy = 2 * rt.system().scheduler().num_workers();
  weave::test::latch running{busy};
  for (size_t i = 0; i < busy; ++i)
    rt.system().spawn([=, &running](caf::event_based_actor* a) -> caf::behavior {
      a->send(a, 0);
      auto first = std::make_shared<bool>(true);
      return {[=, &running](int) {
        if (*first) {
          *first = false;
          running.count_down();
        }
        auto until = std::chrono::steady_clock::now() + busy_turn;
        while (std::chrono::steady_clock::now() < until) {
          // spin
        }
        spins->fetch_add(1, std::memory_order_relaxed);
        if (stop->load(std::memory_order_relaxed))
          a->quit();
        else
          a->send(a, 0);
      }};
    });
  REQUIRE(running.wait());
  auto before = spins->load();
  for (size_t i = 0; i < rounds; ++i)
    round(warm_rounds + i, warm_rounds + i);
  // The busy actors ran all along.
  CHECK(spins->load() > before);
}
