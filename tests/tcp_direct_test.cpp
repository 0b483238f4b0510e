// actors/tcp: a readiness runs its idle connection actor's turn on the I/O
// thread without a message (io_unit.hpp, `run_direct`). Counted; never with
// tcp-inline-turns = 0; the turn's current message is from nobody; an actor
// that quits in such a turn ends (its monitors told, later requests
// refused); messages that arrive during the turn are handled, in order; a
// protocol callback that blocks there is reported and does not hold the
// other connections.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "actors/tcp_protocol.hpp"
#include "caf/all.hpp"
#include "runtime/error.hpp"
#include "runtime/runtime.hpp"
#include "runtime/this_thread.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_inline_support.hpp"
#include "tests/tcp_protocol_support.hpp"
#include "tests/tcp_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using namespace weave::test::tcp;
using namespace weave::test::proto;
using weave::test::latch;
using weave::test::patience;

namespace {

/// What the server's protocols saw, for the test thread.
struct seen_by_server {
  std::atomic<int> on_io{0};
  std::atomic<int> elsewhere{0};
  std::atomic<int> sender_not_null{0};
  std::atomic<int> promise_pending{0};
};

/// Echoes each chunk and notes where and as what its turn ran.
struct noting_echo : tcp_protocol {
  seen_by_server* seen;
  explicit noting_echo(seen_by_server* s) : seen(s) {}
  void data_received(tcp_transport& t, const char* p, size_t n) override {
    ++(weave::this_thread_name() == "weave-tcp" ? seen->on_io
                                                : seen->elsewhere);
    auto self = t.self();
    if (self->current_sender() != nullptr)
      ++seen->sender_not_null;
    if (self->make_response_promise().pending())
      ++seen->promise_pending;
    t.write(p, n);
  }
};

/// `rounds` round trips of one byte through an echo on `fd`.
void ping_pong(int fd, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    std::string one(1, static_cast<char>('a' + i % 26));
    send_all(fd, one);
    REQUIRE(read_n(fd, 1) == one);
  }
}

} // namespace

TEST_CASE("an idle connection's readiness runs its turn on the I/O thread "
          "without a message: counted, its current message from nobody; "
          "never with tcp-inline-turns = 0") {
  for (const char* gather : {"never", "always"}) {
    for (size_t turns : {size_t{8}, size_t{0}}) {
      std::string gather_mode = gather; // a pointer would be printed
      CAPTURE(gather_mode);
      CAPTURE(turns);
      seen_by_server seen;
      weave::runtime rt{turns_config(turns, gather)};
      auto srv = spawn_tcp_server(rt, "127.0.0.1", 0, [&seen] {
        return std::make_unique<noting_echo>(&seen);
      });
      caf::scoped_actor self{rt.system()};
      int fd = dial(port_of(self, srv));
      // Until a round ran on the I/O thread (tcp_protocol_support.hpp).
      if (turns > 0)
        REQUIRE(warm_up_direct(rt, fd) > 0);
      int on_io = seen.on_io;
      int total = seen.on_io + seen.elsewhere;
      auto before = rt.metrics().tcp_io;
      ping_pong(fd, 200);
      // The last turn is counted as it ends, after its reply went out.
      weave::test::eventually([&] {
        return turns == 0
               || rt.metrics().tcp_io.direct_turns - before.direct_turns
                    >= 200;
      });
      auto after = rt.metrics().tcp_io;
      CHECK(seen.on_io + seen.elsewhere - total == 200);
      CHECK(seen.sender_not_null == 0);
      CHECK(seen.promise_pending == 0);
      if (turns == 0) {
        CHECK(after.direct_turns == 0);
        CHECK(seen.on_io == 0);
      } else {
        // From then on, each round's readiness finds the connection idle:
        // its turn ended on the I/O thread before that thread looked for
        // readiness again.
        CHECK(seen.on_io - on_io == 200);
        CHECK(after.direct_turns - before.direct_turns >= 200);
        CHECK(after.turns - before.turns >= after.direct_turns
                                               - before.direct_turns);
      }
      ::close(fd);
      self->send(srv, tcp_close_atom::value);
    }
  }
}

namespace {

/// Closes its connection when it reads "bye".
struct closing_on_bye : recording {
  using recording::recording;
  void data_received(tcp_transport& t, const char* p, size_t n) override {
    recording::data_received(t, p, n);
    if (j->text().find("bye") != std::string::npos)
      t.close();
  }
};

} // namespace

TEST_CASE("a connection whose protocol closes in a turn without a message "
          "ends: its monitor is told, later requests are refused, the peer "
          "sees the end of stream") {
  weave::runtime rt{turns_config(8)};
  caf::scoped_actor self{rt.system()};
  auto listener = spawn_tcp_listener(rt, "127.0.0.1", 0);
  auto port = port_of(self, listener);
  auto before = rt.metrics().tcp_io.direct_turns;
  constexpr int n = 20;
  for (int i = 0; i < n; ++i) {
    CAPTURE(i);
    journal j;
    auto conn = spawn_tcp_connect(rt, "127.0.0.1", port,
                                  std::make_unique<closing_on_bye>(&j));
    auto peer = ask<tcp_connection>(self, listener, accept_atom::value);
    REQUIRE(peer);
    self->monitor(conn);
    // The client is idle when "bye" arrives (it waits for readiness).
    REQUIRE(weave::test::eventually([&] { return j.log() == "connected;"; }));
    REQUIRE(ask<uint64_t>(self, *peer, tcp_write_atom::value,
                          std::string{"bye"}));
    bool down = false;
    self->receive(
      [&](caf::down_msg& dm) { down = dm.source == conn.address(); },
      caf::after(patience) >> [] {});
    CHECK(down);
    CHECK(j.lost_latch.wait(patience));
    CHECK(!j.reason);
    CHECK(j.alive == 0);
    auto later = ask<tcp_stats>(self, conn, tcp_stats_atom::value);
    CHECK(!later);
    auto eof = ask<std::string>(self, *peer, read_some_atom::value);
    CHECK(!eof); // the end of stream (closed) or the reset
    self->send(*peer, tcp_close_atom::value);
  }
  // The closes above ran in turns without a message (the client was idle).
  CHECK(rt.metrics().tcp_io.direct_turns - before >= n);
}

namespace {

/// Answers each line "k" with "rk" by a tcp_write request to its own
/// connection: a message that arrives while the turn runs.
struct replies_by_message : tcp_protocol {
  std::string line;
  void data_received(tcp_transport& t, const char* p, size_t n) override {
    for (size_t i = 0; i < n; ++i) {
      if (p[i] != '\n') {
        line += p[i];
        continue;
      }
      caf::anon_send(caf::actor_cast<caf::actor>(t.self()),
                     tcp_write_atom::value, "r" + line + "\n");
      line.clear();
    }
  }
};

} // namespace

TEST_CASE("messages that reach a connection during its turn without a "
          "message are handled: 500 replies in order, while another actor "
          "asks it for stats 2,000 times") {
  for (const char* gather : {"never", "always"}) {
    CAPTURE(gather);
    weave::runtime rt{turns_config(8, gather)};
    auto srv = spawn_tcp_server(rt, "127.0.0.1", 0, [] {
      return std::make_unique<replies_by_message>();
    });
    caf::scoped_actor self{rt.system()};
    auto port = port_of(self, srv);
    int fd = dial(port);
    // A second client through the same server whose connection another
    // thread keeps asking for stats (requests from outside, during turns).
    weave::actors::tcp_connection other = spawn_tcp_connect(
      rt, "127.0.0.1", port);
    REQUIRE(ask<std::string>(self, other, connected_atom::value));
    std::atomic<int> answered{0};
    std::atomic<bool> done{false};
    std::thread asker{[&] {
      caf::scoped_actor s{rt.system()};
      for (int i = 0; i < 2000; ++i) {
        if (ask<tcp_stats>(s, other, tcp_stats_atom::value))
          ++answered;
        if (i % 10 == 0) {
          // Bytes through the other connection too (its replies by message).
          auto w = ask<uint64_t>(s, other, tcp_write_atom::value,
                                 std::to_string(i) + "\n");
          auto r = ask<std::string>(s, other, read_line_atom::value);
          if (!w || !r || *r != "r" + std::to_string(i))
            break;
        }
      }
      done = true;
    }};
    for (int i = 0; i < 500; ++i) {
      auto k = std::to_string(i);
      send_all(fd, k + "\n");
      auto want = "r" + k + "\n";
      auto got = read_n(fd, want.size());
      REQUIRE(got == want);
    }
    asker.join();
    CHECK(done);
    CHECK(answered == 2000);
    ::close(fd);
    self->send(srv, tcp_close_atom::value);
  }
}

namespace {

/// Echoes; a chunk "block" waits (on purpose: the bug a report is for)
/// until the test releases it.
struct blocking_echo : tcp_protocol {
  latch* release;
  std::atomic<int>* blocked_on_io;
  blocking_echo(latch* r, std::atomic<int>* b) : release(r), blocked_on_io(b) {}
  void data_received(tcp_transport& t, const char* p, size_t n) override {
    if (std::string{p, n} == "block") {
      if (weave::this_thread_name() == "weave-tcp")
        ++*blocked_on_io;
      release->wait(patience);
    }
    t.write(p, n);
  }
};

} // namespace

TEST_CASE("a protocol callback that blocks in a turn without a message is "
          "reported as the connection's; the other connections keep "
          "flowing meanwhile") {
  auto cfg = turns_config(8);
  cfg.set("weave.blocking-threshold", caf::timespan{50ms});
  std::mutex mtx;
  std::vector<weave::slow_handler_event> reports;
  latch release{1};
  std::atomic<int> blocked_on_io{0};
  weave::runtime rt{std::move(cfg)};
  rt.on_slow_handler([&](const weave::slow_handler_event& ev) {
    std::unique_lock<std::mutex> guard{mtx};
    reports.push_back(ev);
  });
  auto srv = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<blocking_echo>(&release, &blocked_on_io);
  });
  caf::scoped_actor self{rt.system()};
  auto port = port_of(self, srv);
  int stuck = dial(port);
  int other = dial(port);
  // Both accepted, and their turns on the I/O thread
  // (tcp_protocol_support.hpp).
  REQUIRE(warm_up_direct(rt, stuck) > 0);
  REQUIRE(warm_up_direct(rt, other) > 0);
  send_all(stuck, "block");
  REQUIRE(weave::test::eventually([&] { return blocked_on_io == 1; }));
  // While that turn holds the I/O thread: other bytes still echo.
  for (int i = 0; i < 50; ++i) {
    send_all(other, "x");
    REQUIRE(read_n(other, 1) == "x");
  }
  bool reported = false;
  CHECK(weave::test::eventually([&] {
    std::unique_lock<std::mutex> guard{mtx};
    for (auto& ev : reports)
      if (ev.actor_name == "weave.tcp_connection"
          && ev.worker == rt.system().scheduler().num_workers())
        reported = true;
    return reported;
  }));
  release.count_down();
  CHECK(read_n(stuck, 5) == "block");
  ::close(stuck);
  ::close(other);
  self->send(srv, tcp_close_atom::value);
}
