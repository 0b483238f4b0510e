#pragma once

// Shared by the tcp_protocol suites: a journal of what a protocol saw
// (callbacks run on other threads: the test thread reads it under its
// lock), a recording protocol to derive from, and plain blocking sockets as
// peers.

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "actors/tcp_protocol.hpp"
#include "caf/all.hpp"
#include "runtime/runtime.hpp"
#include "tests/tcp_support.hpp"
#include "tests/test_support.hpp"

namespace weave::test::proto {

using namespace weave::actors;
using weave::test::latch;
using weave::test::patience;
using weave::test::tcp::ask;
using weave::test::tcp::pattern;

/// What a protocol saw, for the test thread (callbacks run on other
/// threads).
struct journal {
  std::mutex mtx;
  std::string received;
  std::vector<std::string> events;
  std::atomic<int> lost{0};
  caf::error reason;
  size_t peak_buffered = 0;
  latch lost_latch{1};
  std::atomic<int> alive{0};

  void event(std::string what) {
    std::unique_lock<std::mutex> guard{mtx};
    events.push_back(std::move(what));
  }
  void got(const char* p, size_t n) {
    std::unique_lock<std::mutex> guard{mtx};
    received.append(p, n);
  }
  void note_buffered(size_t n) {
    std::unique_lock<std::mutex> guard{mtx};
    peak_buffered = std::max(peak_buffered, n);
  }
  size_t peak() {
    std::unique_lock<std::mutex> guard{mtx};
    return peak_buffered;
  }
  void lost_with(const caf::error& err) {
    {
      std::unique_lock<std::mutex> guard{mtx};
      ++lost;
      reason = err;
      events.push_back("lost");
    }
    lost_latch.count_down();
  }
  std::string text() {
    std::unique_lock<std::mutex> guard{mtx};
    return received;
  }
  std::string log() {
    std::unique_lock<std::mutex> guard{mtx};
    std::string out;
    for (auto& e : events)
      out += e + ";";
    return out;
  }
};

/// Records everything into a journal; subclasses add behaviour.
struct recording : tcp_protocol {
  journal* j;
  explicit recording(journal* j) : j(j) {
    ++j->alive;
  }
  ~recording() override {
    --j->alive;
  }
  void connected(tcp_transport&) override {
    j->event("connected");
  }
  void data_received(tcp_transport&, const char* p, size_t n) override {
    j->got(p, n);
  }
  void eof_received(tcp_transport& t) override {
    j->event("eof");
    t.close();
  }
  void connection_lost(const caf::error& err) override {
    j->lost_with(err);
  }
};

/// What many echo protocols saw, for the test thread.
struct counters {
  std::atomic<int> made{0};
  std::atomic<int> connected{0};
  std::atomic<int> lost{0};
  std::atomic<int> clean{0};
  std::atomic<int> alive{0};
  std::atomic<int> early{0}; // a callback after connection_lost, or before
                             // connected
};

/// Echoes and counts; a callback out of order counts as `early`.
struct counted_echo : tcp_protocol {
  counters* c;
  bool up = false;
  bool down = false;
  explicit counted_echo(counters* cc) : c(cc) {
    ++c->made;
    ++c->alive;
  }
  ~counted_echo() override {
    --c->alive;
  }
  void connected(tcp_transport&) override {
    if (up || down)
      ++c->early;
    up = true;
    ++c->connected;
  }
  void data_received(tcp_transport& t, const char* p, size_t n) override {
    if (!up || down)
      ++c->early;
    t.write(p, n);
  }
  void eof_received(tcp_transport& t) override {
    if (!up || down)
      ++c->early;
    t.close();
  }
  void connection_lost(const caf::error& err) override {
    if (down)
      ++c->early;
    down = true;
    ++c->lost;
    if (!err)
      ++c->clean;
  }
};

/// Echoes, noting how much waits in its write buffer.
struct echo_rec : recording {
  using recording::recording;
  void data_received(tcp_transport& t, const char* p, size_t n) override {
    j->got(p, n);
    t.write(p, n);
    j->note_buffered(t.write_buffered());
  }
};

inline std::string pattern_text(size_t n, size_t client = 0) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i)
    out[i] = pattern(client, i);
  return out;
}

/// A blocking loopback socket connected to `port` whose reads give up after
/// `patience` (a missing FIN fails the test instead of hanging it);
/// `rcvbuf` > 0 sets its receive buffer.
inline int dial(uint16_t port, int rcvbuf = 0) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  if (rcvbuf > 0)
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  timeval tv{};
  tv.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(patience)
                .count();
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
          == 0);
  return fd;
}

/// Reads until end of stream or an error: the bytes, and the errno of a
/// failed `recv` (0 for a clean end of stream).
inline std::pair<std::string, int> read_all(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return {out, errno};
    }
    if (n == 0)
      return {out, 0};
    out.append(buf, static_cast<size_t>(n));
  }
}

/// Reads `want` bytes (fewer at end of stream or an error).
inline std::string read_n(int fd, size_t want) {
  std::string out;
  char buf[65536];
  while (out.size() < want) {
    auto n = ::recv(fd, buf, std::min(sizeof(buf), want - out.size()), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

/// Sends all of `data`; false if the socket refused (reset, closed).
/// Without an assertion: for threads other than the test's, where a
/// failed REQUIRE would end the process instead of failing the test.
inline bool try_send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    auto n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

/// Sends all of `data`, on the test thread (the test fails if it cannot).
inline void send_all(int fd, const std::string& data) {
  REQUIRE(try_send_all(fd, data));
}

/// One-byte round trips through an echo on `fd` until one ran on the TCP
/// I/O thread as a turn without a message (`tcp_io.direct_turns` moved
/// after it): the rounds it took (each echoed once), 0 if none did within
/// the test's patience. A new connection's first turns run on a worker,
/// and a readiness that comes while such a turn is still ending joins it
/// there; on a loaded machine the next byte can come before the worker's
/// turn ends, round after round (CI saw 150 in a row; docs/design.md,
/// "Readiness without a message"). After a round that joined a worker's
/// turn, this waits up to 100 ms for its count (the turn is counted as it
/// ends), which also lets the worker's turn end. From a direct round on,
/// the connection stays on the I/O thread until something else sends to
/// it. The count is the runtime's: call it while no other connection of
/// `rt` has traffic, or another's direct turn could end the warm-up.
inline int warm_up_direct(weave::runtime& rt, int fd) {
  auto until = std::chrono::steady_clock::now() + patience;
  int rounds = 0;
  while (std::chrono::steady_clock::now() < until) {
    auto before = rt.metrics().tcp_io.direct_turns;
    send_all(fd, "w");
    REQUIRE(read_n(fd, 1) == "w");
    ++rounds;
    if (weave::test::eventually(
          [&] { return rt.metrics().tcp_io.direct_turns > before; },
          std::chrono::milliseconds{100}))
      return rounds;
  }
  return 0;
}

inline uint16_t port_of(caf::scoped_actor& self, const tcp_listener& l) {
  auto port = ask<uint16_t>(self, l, tcp_port_atom::value);
  REQUIRE(port);
  return *port;
}

/// A port nobody listens on (bound, then closed).
inline uint16_t dead_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// Answers every int at once.
inline caf::actor echo_int(weave::runtime& rt) {
  return rt.system().spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](int x) { return x; }};
  });
}

/// Holds every int request until a string arrives, then answers them all
/// (the answer to the string: how many it released); `"n"` releases
/// nothing and answers how many it holds.
inline caf::actor spawn_gate(weave::runtime& rt) {
  return rt.system().spawn([](caf::event_based_actor* g) -> caf::behavior {
    auto waiting = std::make_shared<std::vector<caf::response_promise>>();
    return {
      [=](int) {
        auto rp = g->make_response_promise();
        waiting->push_back(rp);
        return rp;
      },
      [=](std::string& what) {
        // "n": how many it holds; anything else releases them all.
        int n = static_cast<int>(waiting->size());
        if (what == "n")
          return n;
        for (auto& rp : *waiting)
          rp.deliver(1);
        waiting->clear();
        return n;
      },
    };
  });
}

} // namespace weave::test::proto
