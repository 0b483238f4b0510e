#pragma once

// Shared by the TCP suites: an echo server made of actors, clients that
// stream a known byte pattern and check every byte that comes back, and a
// plain blocking socket as the peer of one connection.

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "actors/tcp.hpp"
#include "caf/all.hpp"
#include "runtime/error.hpp"
#include "runtime/runtime.hpp"
#include "tests/io_support.hpp"
#include "tests/test_support.hpp"

namespace weave::test::tcp {

using namespace weave::actors;

/// The byte at `offset` of client `client`'s stream.
inline char pattern(size_t client, uint64_t offset) {
  return static_cast<char>((offset * 131 + client * 7 + (offset >> 12)) & 0xff);
}

/// The server's accepted connections, for their stats afterwards.
struct server_conns {
  std::mutex mtx;
  std::vector<tcp_connection> conns;
};

/// Echoes everything `conn` reads until the peer half-closes, then
/// half-closes too. Each chunk is written (and its write answered) before
/// the next read: the write buffer's backpressure reaches the peer.
inline void echo(caf::event_based_actor* self, tcp_connection conn,
                 failures* bad) {
  self->request(conn, caf::infinite, read_some_atom::value)
    .then(
      [=](std::string& data) {
        self->request(conn, caf::infinite, tcp_write_atom::value,
                      std::move(data))
          .then([=](uint64_t) { echo(self, conn, bad); },
                [=](caf::error& err) {
                  bad->add("echo write: " + weave::render(err));
                });
      },
      [=](caf::error& err) {
        if (!weave::is(err, weave::errc::closed)) {
          bad->add("echo read: " + weave::render(err));
          return;
        }
        self->request(conn, caf::infinite, shutdown_write_atom::value)
          .then([](uint64_t) {},
                [=](caf::error& e) {
                  bad->add("echo shutdown_write: " + weave::render(e));
                });
      });
}

/// Accepts `n` connections and echoes on each.
inline void serve_echo(caf::actor_system& sys, tcp_listener listener,
                       size_t n, std::shared_ptr<server_conns> conns,
                       failures* bad) {
  sys.spawn([=](caf::event_based_actor* self, int) -> caf::behavior {
    auto left = std::make_shared<size_t>(n);
    self->send(self, 0);
    return {[=](int) {
      if (*left == 0) {
        self->quit();
        return;
      }
      --*left;
      self->request(listener, caf::infinite, accept_atom::value)
        .then(
          [=](tcp_connection conn) {
            {
              std::unique_lock<std::mutex> guard{conns->mtx};
              conns->conns.push_back(conn);
            }
            self->spawn([=](caf::event_based_actor* echoer, int) -> caf::behavior {
              echo(echoer, conn, bad);
              return {[](int) {}};
            }, 0);
            self->send(self, 0);
          },
          [=](caf::error& err) { bad->add("accept: " + weave::render(err)); });
    }};
  }, 0);
}

/// The order in which clients finished.
struct finish_order {
  std::mutex mtx;
  std::vector<size_t> ids;
};

/// One client's plan.
struct client_plan {
  size_t id = 0;
  uint64_t bytes = 0;
  size_t chunk = 64 * 1024;
  /// A pause before each read (a slow reader), zero for none.
  caf::timespan read_pause{0};
  /// If set, the client reads nothing until it is true (looked at every
  /// millisecond): a peer that really holds the echo back, however fast
  /// or slow the echo runs.
  std::shared_ptr<std::atomic<bool>> read_gate;
};

/// Streams `plan.bytes` of its pattern, half-closes, and checks that the
/// same bytes come back in order; `done` is counted down at the end (also
/// on failure, recorded in `bad`). `finished` gets the client's id.
inline void run_client(caf::actor_system& sys, tcp_connection conn,
                       client_plan plan, failures* bad, latch* done,
                       std::shared_ptr<finish_order> finished = nullptr) {
  sys.spawn([=](caf::event_based_actor* self, int) -> caf::behavior {
    auto sent = std::make_shared<uint64_t>(0);
    auto got = std::make_shared<uint64_t>(0);
    auto ended = std::make_shared<bool>(false);
    auto end = [=](const std::string& problem) {
      if (*ended)
        return;
      *ended = true;
      if (!problem.empty())
        bad->add("client " + std::to_string(plan.id) + ": " + problem);
      if (finished) {
        std::unique_lock<std::mutex> guard{finished->mtx};
        finished->ids.push_back(plan.id);
      }
      done->count_down();
      self->quit();
    };
    constexpr int write_tag = 0;
    constexpr int read_tag = 1;
    self->send(self, write_tag);
    self->send(self, read_tag);
    return {[=](int tag) {
      if (*ended)
        return;
      if (tag == read_tag && plan.read_gate && !plan.read_gate->load()) {
        self->delayed_send(self, std::chrono::milliseconds{1}, read_tag);
        return;
      }
      if (tag == write_tag) {
        if (*sent == plan.bytes) {
          self->request(conn, caf::infinite, shutdown_write_atom::value)
            .then([](uint64_t) {},
                  [=](caf::error& e) { end("shutdown_write: " + render(e)); });
          return;
        }
        auto n = std::min<uint64_t>(plan.chunk, plan.bytes - *sent);
        std::string data(n, '\0');
        for (uint64_t i = 0; i < n; ++i)
          data[i] = pattern(plan.id, *sent + i);
        *sent += n;
        self->request(conn, caf::infinite, tcp_write_atom::value,
                      std::move(data))
          .then([=](uint64_t) { self->send(self, write_tag); },
                [=](caf::error& e) { end("write: " + render(e)); });
        return;
      }
      self->request(conn, caf::infinite, read_some_atom::value)
        .then(
          [=](std::string& data) {
            for (size_t i = 0; i < data.size(); ++i)
              if (data[i] != pattern(plan.id, *got + i)) {
                end("byte " + std::to_string(*got + i) + " differs");
                return;
              }
            *got += data.size();
            if (*got > plan.bytes) {
              end("more bytes back than sent");
              return;
            }
            if (plan.read_pause.count() > 0)
              self->delayed_send(self, plan.read_pause, read_tag);
            else
              self->send(self, read_tag);
          },
          [=](caf::error& e) {
            if (is(e, errc::closed) && *got == plan.bytes)
              end("");
            else
              end("read after " + std::to_string(*got) + " bytes: "
                  + render(e));
          });
    }};
  }, 0);
}

/// Sends a request from the test thread and waits for the answer.
template <class T, class Handle, class... Ts>
caf::expected<T> ask(caf::scoped_actor& self, const Handle& to, Ts&&... xs) {
  caf::expected<T> out{caf::error{}};
  self->request(to, patience, std::forward<Ts>(xs)...)
    .receive([&](T& x) { out = std::move(x); },
             [&](caf::error& err) { out = std::move(err); });
  return out;
}

inline std::string text(const caf::error& err) {
  return weave::render(err);
}

/// A listener on loopback and a connected pair (client, server side).
struct pair_fixture {
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  tcp_listener listener;
  tcp_connection client;
  tcp_connection server;

  explicit pair_fixture(tcp_options server_opts = {},
                        tcp_options client_opts = {}) {
    listener = spawn_tcp_listener(rt, "127.0.0.1", 0, server_opts);
    auto port = ask<uint16_t>(self, listener, tcp_port_atom::value);
    REQUIRE(port);
    client = spawn_tcp_connect(rt, "127.0.0.1", *port, client_opts);
    auto conn = ask<tcp_connection>(self, listener, accept_atom::value);
    REQUIRE(conn);
    server = *conn;
    REQUIRE(ask<std::string>(self, client, connected_atom::value));
  }

  void write(const tcp_connection& to, std::string data) {
    auto n = ask<uint64_t>(self, to, tcp_write_atom::value, data);
    REQUIRE_MESSAGE(n, text(n.error()));
    CHECK(*n == data.size());
  }
};

/// A blocking peer: listens on loopback, `spawn_tcp_connect` dials it.
/// A connection on `rt` dialled to a plain blocking socket (`fd`, accepted
/// from the listening socket `lfd`).
struct peer_socket {
  int lfd = -1;
  int fd = -1;
  tcp_connection conn;

  peer_socket(weave::runtime& rt, caf::scoped_actor& self,
              tcp_options opts = {}, int peer_rcvbuf = 0) {
    lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(lfd >= 0);
    if (peer_rcvbuf > 0) // inherited by the accepted socket
      ::setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &peer_rcvbuf,
                   sizeof(peer_rcvbuf));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
            == 0);
    REQUIRE(::listen(lfd, 1) == 0);
    socklen_t len = sizeof(addr);
    REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len)
            == 0);
    conn = spawn_tcp_connect(rt, "127.0.0.1", ntohs(addr.sin_port), opts);
    fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(ask<std::string>(self, conn, connected_atom::value));
  }

  peer_socket(const peer_socket&) = delete;
  peer_socket& operator=(const peer_socket&) = delete;

  ~peer_socket() {
    caf::anon_send(conn, tcp_close_atom::value);
    ::close(fd);
    ::close(lfd);
  }

  tcp_stats stats(caf::scoped_actor& self) {
    auto st = ask<tcp_stats>(self, conn, tcp_stats_atom::value);
    REQUIRE(st);
    return *st;
  }
};

/// A runtime of its own and one `peer_socket` on it.
struct raw_peer {
  weave::runtime rt;
  caf::scoped_actor self{rt.system()};
  peer_socket peer;
  int& lfd = peer.lfd;
  int& fd = peer.fd;
  tcp_connection& conn = peer.conn;

  explicit raw_peer(tcp_options opts = {}, int peer_rcvbuf = 0)
    : raw_peer(weave::test::io_config(), opts, peer_rcvbuf) {
  }

  /// The same, on a runtime made with `cfg`.
  explicit raw_peer(weave::runtime_config cfg, tcp_options opts = {},
                    int peer_rcvbuf = 0)
    : rt{std::move(cfg)}, peer{rt, self, opts, peer_rcvbuf} {
  }

  /// Sends `data` and waits until the connection's socket holds all of it.
  void send_all(const std::string& data) {
    REQUIRE(::send(fd, data.data(), data.size(), MSG_NOSIGNAL)
            == static_cast<ssize_t>(data.size()));
    REQUIRE(weave::test::eventually([&] {
      int outq = -1;
      return ::ioctl(fd, SIOCOUTQ, &outq) == 0 && outq == 0;
    }));
  }

  tcp_stats stats() {
    return peer.stats(self);
  }
};


} // namespace weave::test::tcp
