// Second review of s18 (io_unit::run_direct): awaits and thens mixed, a
// skipped message left in the mailbox's cache, more than one turn's worth
// of messages arriving in a turn without a message, the request API
// gathered on one thread, handles dropped while connections end in such
// turns, and the metrics of those turns.
#include <doctest/doctest.h>

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
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
using weave::test::failures;
using weave::test::latch;
using weave::test::patience;

namespace {

/// Answers every int with an error.
caf::actor spawn_refuser(weave::runtime& rt) {
  return rt.system().spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](int) -> caf::result<int> {
      return caf::make_error(caf::sec::runtime_error, "refused");
    }};
  });
}

/// Takes every int and never answers.
caf::actor spawn_black_hole(weave::runtime& rt) {
  return rt.system().spawn([](caf::event_based_actor* b) -> caf::behavior {
    // The promise is dropped undelivered (kept, it would hold this actor).
    return {[=](int) { return b->make_response_promise(); }};
  });
}

/// What a mixing protocol saw, for the test thread.
struct mix_seen {
  std::atomic<int> on_io{0};
  std::atomic<int> lost{0};
  std::atomic<int> lost_with_error{0};
  std::atomic<int> after_lost{0};
  latch lost_latch{1};
  failures bad;
};

/// Commands, one byte each, run one at a time (the next after the last
/// one's reply was written), each with awaits and thens of its actor:
///   'n' three nested awaits            -> "n3"
///   'e' an await answered by an error  -> "e!"
///   't' an await that times out        -> "t!"
///   'h' a then whose handler awaits    -> "h2"
///   'x' nothing to wait for            -> "x"
/// Commands read while one runs wait in `pending`.
struct mixing_proto : tcp_protocol {
  caf::actor echo;
  caf::actor refuser;
  caf::actor hole;
  mix_seen* seen;
  std::string pending;
  bool busy = false;
  bool eof = false;
  bool down = false;
  tcp_transport* tp = nullptr;

  mixing_proto(caf::actor e, caf::actor r, caf::actor h, mix_seen* s)
    : echo(std::move(e)), refuser(std::move(r)), hole(std::move(h)), seen(s) {
  }

  void reply(const std::string& what) {
    if (down)
      ++seen->after_lost;
    tp->write(what);
    busy = false;
    next();
  }

  void next() {
    while (!busy && !pending.empty()) {
      char c = pending.front();
      pending.erase(0, 1);
      run(c);
    }
    if (!busy && pending.empty() && eof)
      tp->close();
  }

  void run(char c) {
    auto self = tp->self();
    busy = true;
    switch (c) {
      case 'n':
        self->request(echo, caf::infinite, 1).await([this, self](int a) {
          self->request(echo, caf::infinite, a + 1).await([this, self](int b) {
            self->request(echo, caf::infinite, b + 1).await([this](int k) {
              reply("n" + std::to_string(k));
            });
          });
        });
        break;
      case 'e':
        self->request(refuser, caf::infinite, 1)
          .await([this](int) { reply("E?"); },
                 [this](caf::error&) { reply("e!"); });
        break;
      case 't':
        self->request(hole, 30ms, 1)
          .await([this](int) { reply("T?"); },
                 [this](caf::error& err) {
                   reply(err == caf::sec::request_timeout ? "t!" : "T?");
                 });
        break;
      case 'h':
        self->request(echo, caf::infinite, 1).then([this, self](int a) {
          self->request(echo, caf::infinite, a + 1).await([this](int b) {
            reply("h" + std::to_string(b));
          });
        });
        break;
      default:
        reply(std::string(1, c));
        break;
    }
  }

  void connected(tcp_transport& t) override {
    tp = &t;
  }
  void data_received(tcp_transport& t, const char* p, size_t n) override {
    tp = &t;
    if (weave::this_thread_name() == "weave-tcp")
      ++seen->on_io;
    if (down)
      ++seen->after_lost;
    pending.append(p, n);
    next();
  }
  void eof_received(tcp_transport& t) override {
    tp = &t;
    eof = true;
    next();
  }
  void connection_lost(const caf::error& err) override {
    if (down)
      ++seen->after_lost;
    down = true;
    ++seen->lost;
    if (err) {
      ++seen->lost_with_error;
      seen->bad.add("lost: " + weave::render(err));
    }
    seen->lost_latch.count_down();
  }
};

std::string expected_reply(char c) {
  switch (c) {
    case 'n':
      return "n3";
    case 'e':
      return "e!";
    case 't':
      return "t!";
    case 'h':
      return "h2";
    default:
      return std::string(1, c);
  }
}

} // namespace

TEST_CASE("review18b: nested awaits, an await answered by an error, one "
          "that times out, an await issued from a then, pipelined and one "
          "at a time: every reply in order, the connection ends cleanly") {
  weave::test::watchdog dog{std::chrono::seconds{240}};
  for (size_t turns : {size_t{0}, size_t{8}}) {
    for (const char* gather : {"never", "always"}) {
      CAPTURE(turns);
      std::string gather_name{gather};
      CAPTURE(gather_name);
      mix_seen seen;
      {
        weave::runtime rt{turns_config(turns, gather)};
        caf::scoped_actor self{rt.system()};
        auto echo = echo_int(rt);
        auto refuser = spawn_refuser(rt);
        auto hole = spawn_black_hole(rt);
        auto srv = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
          return std::make_unique<mixing_proto>(echo, refuser, hole, &seen);
        });
        int fd = dial(port_of(self, srv));
        // One at a time: each command's readiness finds the actor idle.
        std::string script = "xnxehxtnhxenhx";
        for (char c : script) {
          CAPTURE(c);
          send_all(fd, std::string(1, c));
          auto want = expected_reply(c);
          REQUIRE(read_n(fd, want.size()) == want);
        }
        // Pipelined: commands arrive while earlier ones await.
        std::string burst;
        for (int i = 0; i < 40; ++i)
          burst += "nehxnh"[i % 6];
        burst += "t"; // the last one times out
        std::string want;
        for (char c : burst)
          want += expected_reply(c);
        // In pieces, so that readiness comes while the actor awaits.
        for (size_t off = 0; off < burst.size(); off += 7)
          send_all(fd, burst.substr(off, 7));
        // The end of stream arrives while the last await is pending.
        ::shutdown(fd, SHUT_WR);
        CHECK(read_n(fd, want.size()) == want);
        auto [rest, err] = read_all(fd);
        CHECK(rest == "");
        CHECK(err == 0);
        CHECK(seen.lost_latch.wait(patience));
        CHECK(seen.lost == 1);
        CHECK(seen.lost_with_error == 0);
        CHECK(seen.after_lost == 0);
        CHECK(seen.bad.messages() == "");
        if (turns > 0)
          CHECK(seen.on_io > 0);
        ::close(fd);
        self->send(srv, tcp_close_atom::value);
      }
    }
  }
}

namespace {

/// On "a": sends its own connection a tcp_write of "X" (a message that the
/// actor handles after this callback) and awaits a high-priority request
/// to the gate (the message is skipped meanwhile: CAF keeps it in the
/// mailbox's cache), whose answer it only notes. Any other chunk: "r" +
/// chunk.
struct urgent_await_proto : tcp_protocol {
  caf::actor gate;
  std::atomic<int>* a_on_io;
  std::mutex* mtx;
  caf::actor* me;
  weave::runtime* rt;
  std::atomic<uint64_t>* turns_at_a;
  std::atomic<bool>* answered;
  urgent_await_proto(caf::actor g, std::atomic<int>* on_io, std::mutex* m,
                     caf::actor* out, weave::runtime* r,
                     std::atomic<uint64_t>* at_a, std::atomic<bool>* ans)
    : gate(std::move(g)), a_on_io(on_io), mtx(m), me(out), rt(r),
      turns_at_a(at_a), answered(ans) {
  }
  void connected(tcp_transport& t) override {
    std::unique_lock<std::mutex> guard{*mtx};
    *me = caf::actor_cast<caf::actor>(t.self());
  }
  void data_received(tcp_transport& t, const char* p, size_t n) override {
    std::string s{p, n};
    if (s != "a") {
      t.write("r" + s);
      return;
    }
    if (weave::this_thread_name() == "weave-tcp") {
      // The I/O thread's turns so far: this one is counted when it ends,
      // after the `resume` that handles what it sent itself.
      turns_at_a->store(rt->metrics().tcp_io.turns);
      ++*a_on_io;
    }
    auto self = t.self();
    caf::anon_send(caf::actor_cast<caf::actor>(self), tcp_write_atom::value,
                   std::string{"X"});
    // The handler leaves the transport alone (a write there would send
    // the actor a tcp_more message, whose handling brings X back).
    auto* done = answered;
    self->request<caf::message_priority::high>(gate, caf::infinite, 1)
      .await([done](int) { done->store(true); });
  }
};

} // namespace

TEST_CASE("review18b: a message skipped while a protocol awaits a "
          "high-priority response is handled once the response came, even "
          "if the next readiness runs without a message") {
  for (const char* gather : {"never", "always"}) {
    std::string gather_name{gather};
    CAPTURE(gather_name);
    weave::runtime rt{turns_config(8, gather)};
    caf::scoped_actor self{rt.system()};
    auto gate = spawn_gate(rt);
    std::atomic<int> a_on_io{0};
    std::mutex mtx;
    caf::actor conn;
    std::atomic<uint64_t> turns_at_a{0};
    std::atomic<bool> answered{false};
    auto srv = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
      return std::make_unique<urgent_await_proto>(
        gate, &a_on_io, &mtx, &conn, &rt, &turns_at_a, &answered);
    });
    int fd = dial(port_of(self, srv));
    // Warm up until turns run on the I/O thread without a message.
    auto direct = [&] { return rt.metrics().tcp_io.direct_turns; };
    for (int i = 0; i < max_rounds; ++i) {
      auto before = direct();
      send_all(fd, "p");
      REQUIRE(read_n(fd, 2) == "rp");
      if (weave::test::eventually([&] { return direct() > before; }, 200ms))
        break;
    }
    send_all(fd, "a");
    // The turn of "a" ran on the I/O thread (without a message, or as a
    // job there), and with it (its `resume`) the "X" it sent, skipped while
    // the await is pending: the turn is counted after that.
    REQUIRE(weave::test::eventually([&] { return a_on_io == 1; }));
    REQUIRE(weave::test::eventually(
      [&] { return rt.metrics().tcp_io.turns > turns_at_a; }));
    REQUIRE(weave::test::eventually([&] {
      auto n = ask<int>(self, gate, std::string{"n"});
      return n && *n == 1;
    }));
    REQUIRE(ask<int>(self, gate, std::string{"go"}));
    REQUIRE(weave::test::eventually([&] { return answered.load(); }));
    // The next readiness: before s18 a tcp_ready message, whose handling
    // brings back what CAF skipped (drr_cached_queue::flush_cache).
    send_all(fd, "b");
    auto got = read_n(fd, 3);
    CHECK_MESSAGE(got == "rbX", "got \"" << got << "\" (X still skipped)");
    if (got != "rbX") {
      // Any message to the connection brings X back (CAF flushes the
      // cache after a message it handled).
      caf::actor c;
      {
        std::unique_lock<std::mutex> guard{mtx};
        c = conn;
      }
      auto st = ask<tcp_stats>(self, c, tcp_stats_atom::value);
      CHECK(st);
      auto late = read_n(fd, 1);
      MESSAGE("after a stats request: \"" << late << "\"");
    }
    {
      std::unique_lock<std::mutex> guard{mtx};
      conn = nullptr;
    }
    ::close(fd);
    self->send(srv, tcp_close_atom::value);
  }
}

namespace {

/// On "go<k>": writes "G<k>\n" and sends its own connection 1,000 tcp_write
/// messages ("w<k>.<i>\n"); each arrives during the turn, so the turn's
/// `resume` has more than one turn's worth (turn_messages = 64).
struct flooding_proto : tcp_protocol {
  std::atomic<int>* on_io;
  std::string line;
  explicit flooding_proto(std::atomic<int>* o) : on_io(o) {
  }
  void data_received(tcp_transport& t, const char* p, size_t n) override {
    if (weave::this_thread_name() == "weave-tcp")
      ++*on_io;
    for (size_t i = 0; i < n; ++i) {
      if (p[i] != '\n') {
        line += p[i];
        continue;
      }
      auto k = line;
      line.clear();
      t.write("G" + k + "\n");
      auto me = caf::actor_cast<caf::actor>(t.self());
      for (int j = 0; j < 1000; ++j)
        caf::anon_send(me, tcp_write_atom::value,
                       "w" + k + "." + std::to_string(j) + "\n");
    }
  }
};

std::string flood_reply(int k) {
  std::string out = "G" + std::to_string(k) + "\n";
  for (int j = 0; j < 1000; ++j)
    out += "w" + std::to_string(k) + "." + std::to_string(j) + "\n";
  return out;
}

} // namespace

TEST_CASE("review18b: 1,000 messages that reach a connection during its "
          "turn without a message (more than one turn takes): all handled, "
          "in order, while another thread writes to it and asks for stats") {
  weave::test::watchdog dog{std::chrono::seconds{240}};
  for (const char* gather : {"never", "always"}) {
    for (size_t threads : {size_t{1}, size_t{4}}) {
      std::string gather_name{gather};
      CAPTURE(gather_name);
      CAPTURE(threads);
      weave::runtime rt{turns_config(8, gather, threads)};
      caf::scoped_actor self{rt.system()};
      std::atomic<int> on_io{0};
      auto srv = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
        return std::make_unique<flooding_proto>(&on_io);
      });
      auto port = port_of(self, srv);
      int fd = dial(port);
      // Another connection through the same server: its own turns run
      // meanwhile, by readiness and by requests from another thread.
      auto other = spawn_tcp_connect(rt, "127.0.0.1", port);
      REQUIRE(ask<std::string>(self, other, connected_atom::value));
      std::atomic<bool> stop{false};
      std::atomic<int> asked{0};
      failures bad;
      std::thread asker{[&] {
        caf::scoped_actor s{rt.system()};
        while (!stop) {
          if (!ask<tcp_stats>(s, other, tcp_stats_atom::value))
            bad.add("stats refused");
          ++asked;
        }
      }};
      int direct_rounds = 0;
      for (int k = 0; k < 20; ++k) {
        CAPTURE(k);
        int io_before = on_io;
        send_all(fd, std::to_string(k) + "\n");
        auto want = flood_reply(k);
        auto got = read_n(fd, want.size());
        REQUIRE(got.size() == want.size());
        REQUIRE(got == want);
        if (on_io > io_before)
          ++direct_rounds;
      }
      stop = true;
      asker.join();
      CHECK(bad.messages() == "");
      CHECK(asked > 0);
      CHECK(direct_rounds > 0);
      auto m = rt.metrics().tcp_io;
      CHECK(m.turns >= m.direct_turns);
      ::close(fd);
      self->send(srv, tcp_close_atom::value);
    }
  }
}

TEST_CASE("review18b: the request API gathered on the I/O thread with one "
          "scheduler thread: 48 connections echo 256 KiB each, every byte "
          "in order") {
  weave::test::watchdog dog{std::chrono::seconds{240}};
  for (const char* gather : {"always", "never"}) {
    std::string gather_name{gather};
    CAPTURE(gather_name);
    constexpr size_t clients = 48;
    failures bad;
    latch done{clients};
    {
      weave::runtime rt{turns_config(8, gather, 1)};
      caf::scoped_actor self{rt.system()};
      auto listener = spawn_tcp_listener(rt, "127.0.0.1", 0);
      auto port = port_of(self, listener);
      auto conns = std::make_shared<server_conns>();
      serve_echo(rt.system(), listener, clients, conns, &bad);
      auto before = rt.metrics().tcp_io;
      for (size_t i = 0; i < clients; ++i) {
        client_plan plan;
        plan.id = i;
        plan.bytes = 256 * 1024;
        plan.chunk = 4096 + i * 97;
        run_client(rt.system(), spawn_tcp_connect(rt, "127.0.0.1", port),
                   plan, &bad, &done);
      }
      CHECK(done.wait(std::chrono::seconds{120}));
      CHECK(bad.messages() == "");
      auto after = rt.metrics().tcp_io;
      CHECK(after.direct_turns > before.direct_turns);
      CHECK(after.turns - before.turns
            >= after.direct_turns - before.direct_turns);
      self->send(listener, tcp_close_atom::value);
    }
  }
}

namespace {

/// Writes "ok" and closes its connection when it reads "bye"; counts its
/// protocols alive.
struct bye_closer : tcp_protocol {
  std::atomic<int>* alive;
  std::atomic<int>* lost;
  std::atomic<int>* lost_on_io;
  bye_closer(std::atomic<int>* a, std::atomic<int>* l, std::atomic<int>* lio)
    : alive(a), lost(l), lost_on_io(lio) {
    ++*alive;
  }
  ~bye_closer() override {
    --*alive;
  }
  void data_received(tcp_transport& t, const char* p, size_t n) override {
    if (std::string{p, n}.find("bye") != std::string::npos) {
      t.write("ok");
      t.close();
    } else {
      t.write(p, n);
    }
  }
  void connection_lost(const caf::error&) override {
    if (weave::this_thread_name() == "weave-tcp")
      ++*lost_on_io;
    ++*lost;
  }
};

} // namespace

TEST_CASE("review18b: connections that end in turns without a message while "
          "other threads drop the last handles to them, the runtime "
          "destroyed right after: no protocol left, nothing touched after") {
  weave::test::watchdog dog{std::chrono::seconds{240}};
  std::atomic<int> alive{0};
  std::atomic<int> lost{0};
  std::atomic<int> lost_on_io{0};
  constexpr int rounds = 12;
  constexpr int per_round = 16;
  for (int r = 0; r < rounds; ++r) {
    CAPTURE(r);
    const char* gather = r % 2 == 0 ? "never" : "always";
    {
      weave::runtime rt{turns_config(8, gather, 2)};
      caf::scoped_actor self{rt.system()};
      auto listener = spawn_tcp_listener(rt, "127.0.0.1", 0);
      auto port = port_of(self, listener);
      std::vector<tcp_connection> clients;
      std::vector<tcp_connection> peers;
      for (int i = 0; i < per_round; ++i) {
        clients.push_back(spawn_tcp_connect(
          rt, "127.0.0.1", port,
          std::make_unique<bye_closer>(&alive, &lost, &lost_on_io)));
        auto peer = ask<tcp_connection>(self, listener, accept_atom::value);
        REQUIRE(peer);
        peers.push_back(*peer);
      }
      // Idle clients (each waits for readiness); then "bye" from each
      // peer, while threads drop the client handles (the last strong
      // references from outside) as the clients close.
      for (auto& p : peers)
        REQUIRE(ask<uint64_t>(self, p, tcp_write_atom::value,
                              std::string{"ping"}));
      for (auto& p : peers)
        REQUIRE(ask<std::string>(self, p, read_some_atom::value));
      latch go{1};
      std::vector<std::thread> droppers;
      for (int d = 0; d < 2; ++d) {
        std::vector<tcp_connection> mine;
        for (size_t i = d; i < clients.size(); i += 2)
          mine.push_back(std::move(clients[i]));
        droppers.emplace_back([&go, mine = std::move(mine)]() mutable {
          go.wait(patience);
          mine.clear();
        });
      }
      clients.clear();
      for (auto& p : peers)
        caf::anon_send(caf::actor_cast<caf::actor>(p), tcp_write_atom::value,
                       std::string{"bye"});
      go.count_down();
      for (auto& t : droppers)
        t.join();
      for (auto& p : peers) {
        auto ok = ask<std::string>(self, p, read_some_atom::value);
        CHECK(ok);
        if (ok)
          CHECK(*ok == "ok");
      }
      peers.clear();
      // The runtime goes at once (some clients may still be finishing).
    }
    CHECK(alive == 0);
  }
  CHECK(lost == rounds * per_round);
  // Most ended in turns without a message (the client idle when "bye"
  // came); at least one did.
  CHECK(lost_on_io > 0);
}
