// Second hostile review of tcp_protocol: transport calls from thens, thens
// that throw, the request API beside a protocol, many connections, the
// README's example. Each case asserts what tcp_protocol.hpp's first
// comment (or README.md's "TCP protocols") promises.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "actors/tcp_protocol.hpp"
#include "caf/all.hpp"
#include "runtime/error.hpp"
#include "runtime/runtime.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_protocol_support.hpp"
#include "tests/tcp_review_support.hpp"
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


/// Marks the protocol's code running: a callback or a then entered while
/// another one runs is recorded as nested.
struct depth_guard {
  journal* j;
  int& depth;
  depth_guard(journal* jj, int& d, const char* what) : j(jj), depth(d) {
    if (depth++ > 0)
      j->event(std::string{"NESTED "} + what);
  }
  ~depth_guard() {
    --depth;
  }
};

} // namespace

// ---- (1) The README's example, as written there (only its unused
// parameters unnamed: under -Wextra -Werror, the project's own flags, the
// README's text does not compile: "unused parameter 't'", "'reason'").

namespace {

std::atomic<int> upper_lost{0};
std::atomic<int> upper_clean{0};

struct upper : tcp_protocol {                       // one per connection
  std::string partial;
  void connected(tcp_transport&) override {}        // first (optional)
  void data_received(tcp_transport& t, const char* data, size_t n) override {
    partial.append(data, n);                        // data: valid during the call
    for (size_t nl; (nl = partial.find('\n')) != std::string::npos;) {
      std::string line = partial.substr(0, nl);
      partial.erase(0, nl + 1);
      for (auto& c : line) c = std::toupper(static_cast<unsigned char>(c));
      t.write(line + "\n");                         // bool: false once closing
    }
  }
  // eof_received(t): the default t.close() sends what is buffered, then closes
  void connection_lost(const caf::error& reason) override { // last; !reason: clean
    ++upper_lost;
    if (!reason)
      ++upper_clean;
  }
};

} // namespace

TEST_CASE("review2: the README's upper-casing line server") {
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  tcp_listener srv = spawn_tcp_server(rt, "127.0.0.1", 0,
                                      [] { return std::make_unique<upper>(); });
  int fd = dial(port_of(self, srv));
  send_all(fd, "hello\nwor");
  CHECK(read_n(fd, 6) == "HELLO\n");
  send_all(fd, "ld\npartial");
  ::shutdown(fd, SHUT_WR);
  auto [rest, code] = read_all(fd);
  ::close(fd);
  CHECK(rest == "WORLD\n");
  CHECK(code == 0);
  CHECK(weave::test::eventually([] { return upper_lost.load() == 1; }));
  CHECK(upper_clean == 1);
}

// ---- (2) Transport calls from a then.

TEST_CASE("review2: a transport call from a then runs no protocol callback "
          "inside it (resume_reading, want_writable)") {
  journal j; // before the runtime: its end may still call back
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  auto gate = spawn_gate(rt);
  struct nesting : recording {
    caf::actor gate;
    int depth = 0;
    int writes = 0;
    nesting(journal* jj, caf::actor g) : recording(jj), gate(std::move(g)) {}
    void connected(tcp_transport& t) override {
      depth_guard d{j, depth, "connected"};
      j->event("connected");
      t.pause_reading();
      t.self()->request(gate, caf::infinite, 0).then([this, &t](int) {
        depth_guard dd{j, depth, "then"};
        j->event("then begins");
        t.resume_reading();
        t.want_writable(true);
        j->event("then ends");
      });
    }
    void data_received(tcp_transport& t, const char* p, size_t n) override {
      depth_guard d{j, depth, "data_received"};
      j->event("data " + std::string(p, n));
      t.write(p, n);
    }
    void writable(tcp_transport& t) override {
      depth_guard d{j, depth, "writable"};
      if (writes++ == 0) {
        j->event("writable");
        t.write("W");
      }
    }
  };
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<nesting>(&j, gate);
  });
  int fd = dial(port_of(self, server));
  REQUIRE(weave::test::eventually([&] { return j.log() == "connected;"; }));
  send_all(fd, "hi"); // in the kernel: the protocol paused its reading
  // "connected" is journaled before the request reaches the gate: until
  // a "go" released it (one that came first releases nothing).
  REQUIRE(weave::test::eventually([&] {
    auto released = ask<int>(self, gate, std::string{"go"});
    return released && *released == 1;
  }));
  CHECK(read_n(fd, 3).size() == 3);
  ::close(fd);
  REQUIRE(j.lost_latch.wait(patience));
  // Expected: the then's transport calls schedule the callbacks; they run
  // after the then returned, never inside it.
  CHECK(j.log()
        == "connected;then begins;then ends;data hi;writable;eof;lost;");
  CHECK(j.log().find("NESTED") == std::string::npos);
  caf::anon_send_exit(gate, caf::exit_reason::user_shutdown);
}

TEST_CASE("review2: transport calls from a then, in every order: bytes "
          "complete, connection_lost once and last") {
  // 0: write then close; 1: close then write; 2: abort then
  // want_writable(true); 3: want_writable(true) then close; 4:
  // shutdown_write while a producer runs.
  for (int variant = 0; variant < 5; ++variant) {
    CAPTURE(variant);
    journal j;
    weave::runtime rt{weave::test::io_config()};
    caf::scoped_actor self{rt.system()};
    auto ints = echo_int(rt);
    struct combo : recording {
      caf::actor ints;
      int variant;
      int produced = 0;
      combo(journal* jj, caf::actor a, int v)
        : recording(jj), ints(std::move(a)), variant(v) {}
      void connected(tcp_transport& t) override {
        j->event("connected");
        if (variant == 4)
          t.want_writable(true);
        t.self()->request(ints, caf::infinite, 1).then([this, &t](int) {
          j->event("then");
          switch (variant) {
            case 0:
              j->event(t.write("abc") ? "taken" : "refused");
              t.close();
              break;
            case 1:
              t.close();
              j->event(t.write("abc") ? "taken" : "refused");
              break;
            case 2:
              t.abort();
              t.want_writable(true);
              break;
            case 3:
              t.want_writable(true);
              t.close();
              break;
            case 4:
              t.shutdown_write();
              j->event(t.write("late") ? "taken" : "refused");
              break;
          }
        });
      }
      void writable(tcp_transport& t) override {
        if (variant == 4) {
          t.write(std::string(4096, 'p'));
          return;
        }
        if (variant == 2)
          j->event("writable after abort");
        if (produced < 5) {
          ++produced;
          t.write("w");
        }
      }
    };
    auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
      return std::make_unique<combo>(&j, ints, variant);
    });
    int fd = dial(port_of(self, server));
    auto [got, code] = read_all(fd);
    ::close(fd);
    REQUIRE(j.lost_latch.wait(patience));
    CHECK(weave::test::eventually([&] { return j.alive == 0; }));
    CHECK(j.lost == 1);
    auto log = j.log();
    CHECK(log.substr(log.size() - 5) == "lost;");
    switch (variant) {
      case 0:
        CHECK(got == "abc");
        CHECK(code == 0);
        CHECK(log == "connected;then;taken;lost;");
        break;
      case 1:
        CHECK(got == "");
        CHECK(code == 0);
        CHECK(log == "connected;then;refused;lost;");
        break;
      case 2:
        CHECK(got == "");
        CHECK(log == "connected;then;lost;");
        break;
      case 3:
        // close() turns the producer off: whether writable ran before it
        // (in the then, or deferred past it), nothing is cut in two.
        CHECK((got == "" || got == "wwwww"));
        CHECK(code == 0);
        break;
      case 4:
        CHECK(code == 0);
        CHECK(got.size() % 4096 == 0);
        CHECK(got.find_first_not_of('p') == std::string::npos);
        CHECK(log == "connected;then;refused;eof;lost;");
        break;
    }
    if (variant != 2)
      CHECK_MESSAGE(!j.reason, weave::render(j.reason));
    caf::anon_send_exit(ints, caf::exit_reason::user_shutdown);
  }
}

// ---- (3) A then that throws.

TEST_CASE("review2: a then of the protocol that throws ends the connection "
          "with job_failed naming the exception") {
  journal j;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  auto ints = echo_int(rt);
  struct thrower : recording {
    caf::actor ints;
    thrower(journal* jj, caf::actor a) : recording(jj), ints(std::move(a)) {}
    void connected(tcp_transport& t) override {
      j->event("connected");
      t.self()->request(ints, caf::infinite, 1).then([](int) {
        throw std::runtime_error("boom in a then");
      });
    }
  };
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<thrower>(&j, ints);
  });
  int fd = dial(port_of(self, server));
  auto [got, code] = read_all(fd);
  ::close(fd);
  REQUIRE(j.lost_latch.wait(patience));
  CHECK(j.lost == 1);
  CHECK(weave::test::eventually([&] { return j.alive == 0; }));
  // Expected (the header: "job_failed when a callback threw", "the
  // callback's name and the exception's text"): the same for the
  // protocol's own continuation.
  CHECK_MESSAGE(weave::is(j.reason, weave::errc::job_failed),
                weave::render(j.reason));
  CHECK_MESSAGE(weave::render(j.reason).find("boom in a then")
                  != std::string::npos,
                weave::render(j.reason));
  caf::anon_send_exit(ints, caf::exit_reason::user_shutdown);
}

// ---- (4) The request API beside a protocol.

TEST_CASE("review2: a tcp_write request after the protocol's close() is "
          "refused, like the protocol's own write") {
  journal j;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  raw_listener l;
  struct closer : recording {
    using recording::recording;
    void connected(tcp_transport& t) override {
      t.write(std::string(4 << 20, 'x')); // the peer is not reading yet
      t.close();
      j->event(t.write("own") ? "own taken" : "own refused");
    }
  };
  auto conn = spawn_tcp_connect(rt, "127.0.0.1", l.port,
                                std::make_unique<closer>(&j));
  int fd = l.accept_one();
  REQUIRE(weave::test::eventually([&] { return j.log() == "own refused;"; }));
  caf::expected<uint64_t> late{caf::error{}};
  std::atomic<bool> answered{false}; // `late` is the asker's until then
  std::thread asker{[&] {
    caf::scoped_actor other{rt.system()};
    late = ask<uint64_t>(other, conn, tcp_write_atom::value,
                         std::string{"LATE"});
    answered = true;
  }};
  // Let the request reach the connection before the peer drains it: the
  // stats request is answered after the write was taken or refused.
  auto st = weave::test::eventually([&] {
    auto s = ask<tcp_stats>(self, conn, tcp_stats_atom::value);
    return !s || s->writes_pushed_back > 0 || answered.load();
  }, 2000ms);
  static_cast<void>(st);
  auto [got, code] = read_all(fd);
  asker.join();
  ::close(fd);
  REQUIRE(j.lost_latch.wait(patience));
  CHECK(code == 0);
  CHECK_FALSE_MESSAGE(late, "a write taken after close(): " << *late);
  CHECK(got.size() == size_t{4} << 20);
  CHECK(got.substr(got.size() - 4) != "LATE");
}

TEST_CASE("review2: a shutdown_write request while a producer writes: the "
          "FIN after whole chunks, its answer counts every byte") {
  journal j;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  raw_listener l;
  struct producer : recording {
    using recording::recording;
    std::string chunk = std::string(64 * 1024, 'q');
    void connected(tcp_transport& t) override {
      j->event("connected");
      t.want_writable(true);
    }
    void writable(tcp_transport& t) override {
      t.write(chunk);
    }
  };
  auto conn = spawn_tcp_connect(rt, "127.0.0.1", l.port,
                                std::make_unique<producer>(&j));
  int fd = l.accept_one();
  REQUIRE(ask<std::string>(self, conn, connected_atom::value));
  std::string got;
  int code = -1;
  std::thread reader{[&] { std::tie(got, code) = read_all(fd); }};
  auto n = ask<uint64_t>(self, conn, shutdown_write_atom::value);
  reader.join();
  REQUIRE_MESSAGE(n, weave::render(n.error()));
  CHECK(code == 0);
  CHECK(got.size() == *n);
  CHECK(got.size() % (64 * 1024) == 0);
  CHECK(got.find_first_not_of('q') == std::string::npos);
  ::close(fd); // eof: the default close, a clean end
  REQUIRE(j.lost_latch.wait(patience));
  CHECK(j.lost == 1);
  CHECK_MESSAGE(!j.reason, weave::render(j.reason));
}

TEST_CASE("review2: tcp_close sent to its own handle from data_received "
          "ends it once, after that callback") {
  journal j;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  struct self_closer : recording {
    using recording::recording;
    void data_received(tcp_transport& t, const char* p, size_t n) override {
      j->got(p, n);
      auto me = caf::actor_cast<tcp_connection>(t.self());
      t.self()->send(me, tcp_close_atom::value);
      j->event(t.write("still") ? "taken" : "refused");
    }
  };
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<self_closer>(&j);
  });
  int fd = dial(port_of(self, server));
  send_all(fd, "x");
  auto [got, code] = read_all(fd);
  ::close(fd);
  REQUIRE(j.lost_latch.wait(patience));
  CHECK(got == "still");
  CHECK(j.log() == "connected;taken;lost;");
  CHECK(j.lost == 1);
  CHECK(weave::is(j.reason, weave::errc::closed));
  CHECK(weave::test::eventually([&] { return j.alive == 0; }));
}

// ---- (5) Idle timeout, zero bytes, a reset mid-write.

TEST_CASE("review2: idle_timeout does not end a producer whose peer reads; "
          "it ends one whose peer stopped reading") {
  journal j;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  tcp_options opts;
  // Long enough for a thread's wake-up under sanitizers on a busy machine
  // (200 ms ended a flowing connection under tsan).
  opts.idle_timeout = weave::test::start_window;
  struct ticker : recording {
    using recording::recording;
    std::string chunk = std::string(16 * 1024, 't');
    void connected(tcp_transport& t) override {
      t.want_writable(true);
    }
    void writable(tcp_transport& t) override {
      t.write(chunk);
    }
  };
  auto server = spawn_tcp_server(
    rt, "127.0.0.1", 0, [&] { return std::make_unique<ticker>(&j); }, opts);
  int fd = dial(port_of(self, server));
  // Reads 3 idle periods' worth of time, by bytes (no clock): 64 MB.
  auto got = read_n(fd, size_t{64} << 20);
  CHECK(got.size() == size_t{64} << 20);
  CHECK(j.lost == 0);
  // Then stops reading: the buffers fill, nothing moves, the timeout.
  REQUIRE(j.lost_latch.wait(patience));
  CHECK(weave::is(j.reason, weave::errc::timeout));
  ::close(fd);
}

TEST_CASE("review2: a reset by the peer in the middle of a 64 MB write: "
          "io_error once, nothing hangs") {
  journal j;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  struct big : recording {
    using recording::recording;
    void connected(tcp_transport& t) override {
      j->event(t.write(std::string(64 << 20, 'b')) ? "taken" : "refused");
      j->event(t.write("", 0) ? "zero taken" : "zero refused");
    }
  };
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<big>(&j);
  });
  int fd = dial(port_of(self, server));
  CHECK(read_n(fd, 1 << 20).size() == size_t{1} << 20);
  ::linger rst{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
  ::close(fd);
  REQUIRE(j.lost_latch.wait(patience));
  // The 64 MB write sends in a loop inside the call: the reset may come
  // before it returns (then false, though bytes went out; the header says
  // "false ... (nothing taken)"), or after.
  CHECK((j.log() == "taken;zero taken;lost;"
         || j.log() == "refused;zero refused;lost;"));
  CHECK(j.lost == 1);
  CHECK_MESSAGE(weave::is(j.reason, weave::errc::io_error),
                weave::render(j.reason));
  CHECK(weave::test::eventually([&] { return j.alive == 0; }));
}

// ---- (6) Many connections, 16 threads.

namespace {


weave::runtime_config sixteen_threads() {
  auto cfg = weave::test::io_config();
  cfg.set("scheduler.max-threads", size_t{16});
  return cfg;
}

} // namespace

TEST_CASE("review2: 500 connections to a server (16 threads) echo and all "
          "close at once: each told once, each destroyed"
          * doctest::timeout(120)) {
  constexpr int n = 500;
  counters c;
  weave::runtime rt{sixteen_threads()};
  caf::scoped_actor self{rt.system()};
  auto server = spawn_tcp_server(
    rt, "127.0.0.1", 0, [&] { return std::make_unique<counted_echo>(&c); },
    tcp_options{}, 1024);
  auto port = port_of(self, server);
  std::vector<int> fds;
  for (int k = 0; k < n; ++k) {
    fds.push_back(dial(port));
    send_all(fds.back(), "ping" + std::to_string(k));
  }
  for (int k = 0; k < n; ++k) {
    auto want = "ping" + std::to_string(k);
    CHECK(read_n(fds[k], want.size()) == want);
  }
  for (int k = 0; k < n; ++k)
    ::shutdown(fds[k], SHUT_WR);
  int fins = 0;
  for (int k = 0; k < n; ++k) {
    auto [rest, code] = read_all(fds[k]);
    if (rest.empty() && code == 0)
      ++fins;
    ::close(fds[k]);
  }
  CHECK(fins == n);
  CHECK(weave::test::eventually([&] { return c.lost.load() == n; }));
  CHECK(c.made == n);
  CHECK(c.connected == n);
  CHECK(c.clean == n);
  CHECK(c.early == 0);
  CHECK(weave::test::eventually([&] { return c.alive.load() == 0; }));
}

TEST_CASE("review2: the runtime destroyed (16 threads) with 500 connections "
          "in flight (accepting, connecting, echoing)"
          * doctest::timeout(120)) {
  constexpr int n = 500;
  counters srv_c;
  counters cli_c;
  {
    weave::runtime rt{sixteen_threads()};
    caf::scoped_actor self{rt.system()};
    auto server = spawn_tcp_server(
      rt, "127.0.0.1", 0,
      [&] { return std::make_unique<counted_echo>(&srv_c); }, tcp_options{},
      1024);
    auto port = port_of(self, server);
    struct pinger : counted_echo {
      using counted_echo::counted_echo;
      void connected(tcp_transport& t) override {
        counted_echo::connected(t);
        t.write("ping");
      }
    };
    for (int k = 0; k < n; ++k)
      spawn_tcp_connect(rt, "127.0.0.1", port,
                        std::make_unique<pinger>(&cli_c));
  } // destroyed at once
  CHECK(cli_c.made == n);
  CHECK(cli_c.lost == n);
  CHECK(cli_c.alive == 0);
  CHECK(srv_c.lost == srv_c.made);
  CHECK(srv_c.alive == 0);
  CHECK(cli_c.early == 0);
  CHECK(srv_c.early == 0);
}

// ---- (7) The memory bound.

TEST_CASE("review2: an echo whose peer does not read, with tcp_write "
          "requests from another actor: reading stops at the bound") {
  journal j;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  raw_listener l;
  tcp_options opts;
  opts.write_buffer = 64 * 1024;
  opts.socket_buffer = 16 * 1024; // the kernel's buffers fill at once
  std::atomic<size_t> peak{0};
  struct echo_peak : recording {
    std::atomic<size_t>* peak;
    echo_peak(journal* jj, std::atomic<size_t>* p) : recording(jj), peak(p) {}
    void data_received(tcp_transport& t, const char* p, size_t n) override {
      j->event("d"); // (counted below)
      t.write(p, n);
      weave::test::raise_max(*peak, t.write_buffered());
    }
  };
  auto conn = spawn_tcp_connect(rt, "127.0.0.1", l.port,
                                std::make_unique<echo_peak>(&j, &peak),
                                opts);
  int fd = l.accept_one();
  REQUIRE(ask<std::string>(self, conn, connected_atom::value));
  // The peer sends 8 MB and reads nothing: the echo stops reading.
  std::thread sender{[&] {
    std::string chunk(1 << 20, 's');
    for (int k = 0; k < 8; ++k) {
      size_t off = 0;
      while (off < chunk.size()) {
        auto m = ::send(fd, chunk.data() + off, chunk.size() - off,
                        MSG_NOSIGNAL);
        if (m <= 0)
          return; // the connection is gone
        off += static_cast<size_t>(m);
      }
    }
  }};
  // Once the echo has read, another actor writes 100 KB at a time (each
  // after the last was taken; one larger than the bound is taken once sent,
  // perhaps never here), and asks for the stats after its first write: the
  // answer says that write is queued at the connection.
  REQUIRE(weave::test::eventually([&] {
    std::unique_lock<std::mutex> guard{j.mtx};
    return j.events.size() > 1; // "connected", then a data_received
  }));
  failures bad;
  std::atomic<int> taken{0};
  latch queued{1};
  rt.system().spawn([&, conn](caf::event_based_actor* a) {
    auto step = std::make_shared<std::function<void()>>();
    *step = [&, a, conn, step] {
      a->request(conn, caf::infinite, tcp_write_atom::value,
                 std::string(100000, 'r'))
        .then([&, step](uint64_t) {
          ++taken;
          (*step)();
        },
              [step](caf::error&) { *step = nullptr; }); // no cycle
    };
    (*step)();
    a->request(conn, caf::infinite, tcp_stats_atom::value)
      .then([&](const tcp_stats&) { queued.count_down(); },
            [&](caf::error&) { queued.count_down(); });
  });
  REQUIRE(queued.wait(patience));
  // Bound + one callback's writes (a recv of at most 64 KiB) + one request
  // write that waits for room.
  CHECK(peak.load() <= opts.write_buffer + 64 * 1024 + 100000);
  ::shutdown(fd, SHUT_RDWR);
  sender.join();
  ::close(fd);
  caf::anon_send(conn, tcp_close_atom::value);
  REQUIRE(j.lost_latch.wait(patience));
  CHECK(bad.messages() == "");
}
