// Review of tcp_protocol (hostile): contracts of tcp_protocol.hpp's first
// comment that the code does not keep.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
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
#include "tests/tcp_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using namespace weave::test::tcp;
using namespace weave::test::proto;
using weave::test::failures;
using weave::test::latch;
using weave::test::patience;


TEST_CASE("review: shutdown_write inside data_received sends the FIN") {
  journal j; // before the runtime: its end may still call back
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  // Answers one message, then half-closes ("HTTP/1.0": the peer reads the
  // answer until end of stream).
  struct answer_once : recording {
    using recording::recording;
    void data_received(tcp_transport& t, const char* p, size_t n) override {
      j->got(p, n);
      t.write(p, n);
      t.shutdown_write();
    }
  };
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<answer_once>(&j);
  });
  int fd = dial(port_of(self, server));
  send_all(fd, "ping");
  auto [back, code] = read_all(fd); // gives up after `patience`
  CHECK(back == "ping");
  CHECK_MESSAGE(code == 0, "no FIN: recv failed with " << std::string{std::strerror(code)});
  ::close(fd);
  REQUIRE(j.lost_latch.wait(patience));
}

TEST_CASE("review: shutdown_write inside eof_received (half-close echo) "
          "sends the FIN") {
  journal j; // before the runtime: its end may still call back
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  struct half_close_echo : recording {
    using recording::recording;
    void data_received(tcp_transport& t, const char* p, size_t n) override {
      j->got(p, n);
      t.write(p, n);
    }
    void eof_received(tcp_transport& t) override {
      j->event("eof");
      t.shutdown_write(); // keeps the connection, sends the FIN
    }
  };
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<half_close_echo>(&j);
  });
  int fd = dial(port_of(self, server));
  send_all(fd, "abc");
  ::shutdown(fd, SHUT_WR);
  auto [back, code] = read_all(fd);
  CHECK(back == "abc");
  CHECK_MESSAGE(code == 0, "no FIN: recv failed with " << std::string{std::strerror(code)});
  ::close(fd);
}

TEST_CASE("review: resume_reading inside writable() resumes reading") {
  journal j; // before the runtime: its end may still call back
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  struct gated : recording {
    using recording::recording;
    bool said = false;
    void connected(tcp_transport& t) override {
      j->event("connected");
      t.pause_reading();
      t.want_writable(true);
    }
    void writable(tcp_transport& t) override {
      if (said)
        return; // nothing more: off
      said = true;
      t.write("go");
      t.resume_reading();
    }
  };
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<gated>(&j);
  });
  int fd = dial(port_of(self, server));
  CHECK(read_n(fd, 2) == "go");
  send_all(fd, "data");
  CHECK(weave::test::eventually([&] { return j.text() == "data"; }));
  CHECK(j.text() == "data");
  ::close(fd);
  REQUIRE(j.lost_latch.wait(patience));
}

TEST_CASE("review: t.close() in a then of the protocol does not destroy "
          "the protocol under that then") {
  journal sink_j;
  journal j; // before the runtime: its end may still call back
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<recording>(&sink_j);
  });
  auto ints = echo_int(rt);
  struct closer : recording {
    caf::actor ints;
    std::string note = "after close";
    closer(journal* j, caf::actor a) : recording(j), ints(std::move(a)) {}
    void connected(tcp_transport& t) override {
      j->event("connected");
      t.self()->request(ints, caf::infinite, 1).then([this, &t, jj = j](int) {
        t.close();
        // Still inside this protocol's own continuation: `this` must live.
        jj->event(jj->alive.load() == 1 ? "alive after close"
                                        : "destroyed inside close");
        note.append("!"); // ASan: heap-use-after-free if destroyed above
      });
    }
  };
  auto conn = spawn_tcp_connect(rt, "127.0.0.1", port_of(self, server),
                                std::make_unique<closer>(&j, ints));
  REQUIRE(j.lost_latch.wait(patience));
  CHECK(weave::test::eventually([&] {
    std::unique_lock<std::mutex> guard{j.mtx};
    return j.events.size() >= 3;
  }));
  CHECK(j.log() == "connected;alive after close;lost;");
  CHECK_MESSAGE(!j.reason, weave::render(j.reason));
  caf::anon_send_exit(ints, caf::exit_reason::user_shutdown);
}

TEST_CASE("review: a then the protocol set up does not run after "
          "connection_lost (its `this` is gone)") {
  journal j; // before the runtime: its end may still call back
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  // Holds every request until told.
  caf::actor gate = spawn_gate(rt);
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::listen(lfd, 1) == 0);
  socklen_t len = sizeof(addr);
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  struct waiter : recording {
    caf::actor gate;
    waiter(journal* j, caf::actor g) : recording(j), gate(std::move(g)) {}
    void connected(tcp_transport& t) override {
      j->event("connected");
      // The pattern of tcp_protocol_test's producer: [this, &t].
      t.self()->request(gate, caf::infinite, 0).then([jj = j](int) {
        jj->event(jj->alive.load() == 0 ? "then after destroy" : "then");
      });
    }
  };
  // The handle is kept (a client usually keeps it: its requests).
  auto conn = spawn_tcp_connect(rt, "127.0.0.1", ntohs(addr.sin_port),
                                std::make_unique<waiter>(&j, gate));
  int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(weave::test::eventually([&] { return j.log() == "connected;"; }));
  ::close(fd); // eof: the default close, connection_lost, destroyed
  REQUIRE(j.lost_latch.wait(patience));
  REQUIRE(weave::test::eventually([&] { return j.alive == 0; }));
  // The gate answered the connection before it answers us; the
  // connection then answers our request after that answer (mailbox
  // order): by then the then ran, if it runs at all.
  auto released = ask<int>(self, gate, std::string{"go"});
  REQUIRE(released);
  CHECK(*released == 1);
  // The actor ended with its protocol: the handle's request fails (CAF's
  // request_receiver_down) and the then never ran.
  auto st = ask<tcp_stats>(self, conn, tcp_stats_atom::value);
  CHECK_FALSE(st);
  CHECK(j.log() == "connected;eof;lost;");
  ::close(lfd);
  caf::anon_send_exit(gate, caf::exit_reason::user_shutdown);
}

// ---- What held up (kept as regression checks) ----

namespace {

struct endless : recording {
  std::string chunk = std::string(64 * 1024, 'p');
  using recording::recording;
  void connected(tcp_transport& t) override {
    j->event("connected");
    t.want_writable(true);
  }
  void writable(tcp_transport& t) override {
    t.write(chunk);
  }
};

struct counting_sink : tcp_protocol {
  std::atomic<size_t>* bytes;
  journal* j;
  counting_sink(std::atomic<size_t>* b, journal* j) : bytes(b), j(j) {
    ++j->alive;
  }
  ~counting_sink() override {
    --j->alive;
  }
  void data_received(tcp_transport& t, const char*, size_t n) override {
    *bytes += n;
    t.write("x", 1); // a little back
  }
  void connection_lost(const caf::error&) override {
    std::unique_lock<std::mutex> guard{j->mtx};
    ++j->lost;
  }
};

} // namespace

TEST_CASE("review: destroying the runtime (16 threads) mid-stream tells "
          "each protocol once and destroys it") {
  journal prod_j;
  journal sink_j;
  std::atomic<size_t> bytes{0};
  constexpr int clients = 8;
  {
    auto cfg = weave::test::io_config();
    cfg.set("scheduler.max-threads", size_t{16});
    weave::runtime rt{std::move(cfg)};
    caf::scoped_actor self{rt.system()};
    auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
      return std::make_unique<counting_sink>(&bytes, &sink_j);
    });
    auto port = port_of(self, server);
    for (int k = 0; k < clients; ++k)
      spawn_tcp_connect(rt, "127.0.0.1", port,
                        std::make_unique<endless>(&prod_j));
    REQUIRE(weave::test::eventually([&] {
      return bytes.load() > size_t{32} << 20 && sink_j.alive == clients;
    }));
  } // the runtime's destructor: mid-stream
  CHECK(prod_j.lost == clients);
  CHECK(sink_j.lost == clients);
  CHECK(prod_j.alive == 0);
  CHECK(sink_j.alive == 0);
  // shut_down, or a reset by the peer (in the same runtime) stopped first.
  CHECK_MESSAGE((weave::is(prod_j.reason, weave::errc::shut_down)
                 || weave::is(prod_j.reason, weave::errc::io_error)),
                weave::render(prod_j.reason));
}

TEST_CASE("review: close then abort; writes from connection_lost refused; "
          "zero-length writes; pause_reading in eof_received") {
  journal j;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  struct weird : recording {
    tcp_transport* tp = nullptr;
    using recording::recording;
    void connected(tcp_transport& t) override {
      tp = &t;
      j->event(t.write("", 0) ? "zero ok" : "zero refused");
    }
    void data_received(tcp_transport& t, const char* p, size_t n) override {
      j->got(p, n);
      t.write(std::string(300000, 'z'));
      t.close();
      t.abort();
      j->event(t.write("late") ? "late taken" : "late refused");
    }
    void connection_lost(const caf::error& err) override {
      j->event(tp->write("after") ? "after taken" : "after refused");
      tp->close();
      tp->abort();
      tp->want_writable(true);
      tp->resume_reading();
      j->lost_with(err);
    }
  };
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<weird>(&j);
  });
  int fd = dial(port_of(self, server));
  send_all(fd, "x");
  auto [rest, code] = read_all(fd);
  ::close(fd);
  CHECK(code == ECONNRESET);
  REQUIRE(j.lost_latch.wait(patience));
  CHECK(j.log() == "zero ok;late refused;after refused;lost;");
  CHECK_MESSAGE(!j.reason, weave::render(j.reason));
  CHECK(weave::test::eventually([&] { return j.alive == 0; }));
}

TEST_CASE("review: each callback that throws: job_failed once, destroyed") {
  struct thrower : recording {
    int where;
    thrower(journal* j, int w) : recording(j), where(w) {}
    void connected(tcp_transport& t) override {
      if (where == 0)
        throw std::runtime_error("c");
      t.want_writable(true);
    }
    void writable(tcp_transport& t) override {
      if (where == 1)
        throw 42;
      t.want_writable(false);
    }
    void eof_received(tcp_transport& t) override {
      if (where == 2)
        throw std::runtime_error("e");
      t.close();
    }
    void connection_lost(const caf::error& err) override {
      j->lost_with(err);
      if (where == 3)
        throw std::runtime_error("l");
    }
  };
  for (int where = 0; where < 4; ++where) {
    CAPTURE(where);
    journal j;
    weave::runtime rt{weave::test::io_config()};
    caf::scoped_actor self{rt.system()};
    auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
      return std::make_unique<thrower>(&j, where);
    });
    int fd = dial(port_of(self, server));
    if (where >= 2)
      ::shutdown(fd, SHUT_WR);
    auto [rest, code] = read_all(fd);
    ::close(fd);
    REQUIRE(j.lost_latch.wait(patience));
    CHECK(weave::test::eventually([&] { return j.alive == 0; }));
    CHECK(j.lost == 1);
    if (where < 3)
      CHECK(weave::is(j.reason, weave::errc::job_failed));
  }
}

TEST_CASE("review: a 64 MB single write then close: every byte, no error") {
  journal j;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  struct big : recording {
    using recording::recording;
    void connected(tcp_transport& t) override {
      j->event(t.write(std::string(64 << 20, 'b')) ? "taken" : "refused");
      t.close();
    }
  };
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<big>(&j);
  });
  int fd = dial(port_of(self, server));
  auto [back, code] = read_all(fd);
  ::close(fd);
  CHECK(back.size() == size_t{64} << 20);
  CHECK(code == 0);
  REQUIRE(j.lost_latch.wait(patience));
  CHECK(j.log() == "taken;lost;");
  CHECK_MESSAGE(!j.reason, weave::render(j.reason));
}

TEST_CASE("review: close() with a peer that never reads: idle_timeout ends "
          "it; a shutdown does too") {
  for (int variant = 0; variant < 2; ++variant) {
    CAPTURE(variant);
    journal j;
    weave::runtime rt{weave::test::io_config()};
    auto self_ptr = std::make_unique<caf::scoped_actor>(rt.system());
    auto& self = *self_ptr;
    tcp_options opts;
    if (variant == 0)
      opts.idle_timeout = 300ms;
    struct flood : recording {
      using recording::recording;
      void connected(tcp_transport& t) override {
        t.write(std::string(16 << 20, 'f'));
        t.close();
      }
    };
    auto server = spawn_tcp_server(
      rt, "127.0.0.1", 0, [&] { return std::make_unique<flood>(&j); }, opts);
    int fd = dial(port_of(self, server));
    if (variant == 0) {
      REQUIRE(j.lost_latch.wait(patience));
      CHECK(weave::is(j.reason, weave::errc::timeout));
    } else {
      REQUIRE(weave::test::eventually([&] { return j.alive == 1; }));
      self_ptr.reset();
      auto report = rt.shutdown(1s);
      CHECK(report.threads_abandoned == 0);
      CHECK(j.lost == 1);
      CHECK(weave::is(j.reason, weave::errc::shut_down));
    }
    ::close(fd);
  }
}

TEST_CASE("review: requests from another actor while a producer runs: "
          "write_all, tcp_write, then tcp_close ends it once") {
  journal j;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  std::atomic<size_t> bytes{0};
  journal sink_j;
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<counting_sink>(&bytes, &sink_j);
  });
  auto conn = spawn_tcp_connect(rt, "127.0.0.1", port_of(self, server),
                                std::make_unique<endless>(&j));
  REQUIRE(ask<std::string>(self, conn, connected_atom::value));
  for (int k = 0; k < 20; ++k) {
    auto w = ask<uint64_t>(self, conn, tcp_write_atom::value,
                           std::string(100000, 'r'));
    REQUIRE(w);
    auto wa = ask<std::vector<char>>(self, conn, write_all_atom::value,
                                     std::vector<char>(200000, 'a'));
    REQUIRE(wa);
    CHECK(wa->size() == 200000);
  }
  auto r = ask<std::string>(self, conn, read_some_atom::value);
  CHECK_FALSE(r);
  caf::anon_send(conn, tcp_close_atom::value);
  REQUIRE(j.lost_latch.wait(patience));
  CHECK(j.lost == 1);
  CHECK(weave::is(j.reason, weave::errc::closed));
  CHECK(weave::test::eventually([&] { return j.alive == 0; }));
}
