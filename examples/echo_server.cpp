// A TCP echo server and four clients on loopback, all actors; one client
// reads slowly, and the server's writes to it are pushed back (answered
// only once the bytes fit in the bounded write buffer) while the other
// clients flow. (It reads nothing until the others have finished and the
// server has held a write to it back: a reader that is merely slow may
// keep up with the echo of a slow machine, a sanitizer's build.) The sockets' readiness is watched by weave's own I/O thread
// (`weave-tcp`, epoll); an actor that a readiness answers may run its next
// turn on that thread (up to `weave.tcp-inline-turns` turns in a row, then
// the chain goes on on CAF's scheduler), so each line is tagged with the
// thread that printed it: `weave-tcp`, a scheduler thread, or main. The
// clients count where their read answers ran.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "actors/tcp.hpp"
#include "caf/all.hpp"
#include "examples/example.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;

namespace weave_examples {

namespace {

constexpr size_t clients = 4;
constexpr size_t slow_client = 0;
constexpr uint64_t bytes_per_client = 256 * 1024;
constexpr size_t chunk = 16 * 1024;
constexpr size_t server_write_buffer = 16 * 1024;
/// Pushed-back writes printed one by one; the rest are counted.
constexpr int shown_push_backs = 3;

char pattern(size_t client, uint64_t i) {
  return static_cast<char>('a' + (i + client) % 26);
}

/// Echoes until the peer half-closes; reports writes that had to wait,
/// and at the end sends the connection's stats to `main`.
void echo(caf::event_based_actor* self, tcp_connection conn, size_t n,
          std::shared_ptr<uint64_t> pushed, caf::actor main) {
  self->request(conn, caf::infinite, read_some_atom::value)
    .then(
      [=](std::string& data) {
        auto size = data.size();
        self->request(conn, caf::infinite, tcp_write_atom::value,
                      std::move(data))
          .then([=](uint64_t) {
            self->request(conn, caf::infinite, tcp_stats_atom::value)
              .then([=](const tcp_stats& st) {
                if (st.writes_pushed_back > *pushed) {
                  *pushed = st.writes_pushed_back;
                  if (n == slow_client && *pushed <= shown_push_backs)
                    say("server: a write of ", size, " bytes to connection ",
                        n, " waited for room (pushed back)");
                }
                echo(self, conn, n, pushed, main);
              });
          });
      },
      [=](caf::error&) { // the client half-closed: finish and report
        self->request(conn, caf::infinite, shutdown_write_atom::value)
          .then([=](uint64_t) {
            self->request(conn, caf::infinite, tcp_stats_atom::value)
              .then([=](const tcp_stats& st) {
                caf::anon_send(main, n, st);
                self->quit();
              });
          });
      });
}

/// Where the clients' read answers ran.
std::atomic<uint64_t> answers_on_io_thread{0};
std::atomic<uint64_t> answers_on_scheduler{0};

/// A client: writes its pattern (each write answered once buffered),
/// half-closes, checks what comes back, and tells `main`. The slow client
/// starts reading when `main` sends it a `get_atom`.
caf::behavior client(caf::event_based_actor* cl, tcp_connection conn,
                     size_t c, caf::timespan pause, caf::actor main) {
  auto sent = std::make_shared<uint64_t>(0);
  auto got = std::make_shared<uint64_t>(0);
  auto in_order = std::make_shared<bool>(true);
  cl->send(cl, caf::put_atom::value); // write the next chunk
  if (c != slow_client)
    cl->send(cl, caf::get_atom::value); // read what arrived
  return {
    [=](caf::put_atom) {
      if (*sent == bytes_per_client) {
        cl->request(conn, caf::infinite, shutdown_write_atom::value)
          .then([](uint64_t) {});
        return;
      }
      std::string data(chunk, '\0');
      for (size_t i = 0; i < chunk; ++i)
        data[i] = pattern(c, *sent + i);
      *sent += chunk;
      cl->request(conn, caf::infinite, tcp_write_atom::value, std::move(data))
        .then([=](uint64_t) { cl->send(cl, caf::put_atom::value); });
    },
    [=](caf::get_atom) {
      cl->request(conn, caf::infinite, read_some_atom::value)
        .then(
          [=](std::string& data) {
            ++(weave::this_thread_name() == "weave-tcp" ? answers_on_io_thread
                                                        : answers_on_scheduler);
            for (size_t i = 0; i < data.size(); ++i)
              *in_order = *in_order && data[i] == pattern(c, *got + i);
            *got += data.size();
            if (c == slow_client)
              cl->delayed_send(cl, pause, caf::get_atom::value);
            else
              cl->send(cl, caf::get_atom::value);
          },
          [=](caf::error&) { // end of the echo
            say("client ", c, c == slow_client ? " (slow reader)" : "", ": ",
                *got, " bytes echoed", *in_order ? " in order" : " OUT OF ORDER");
            caf::anon_send(main, caf::ok_atom::value, c);
            cl->quit();
          });
    },
  };
}

} // namespace

void section_tcp(weave::runtime& rt, const options& opts) {
  section("tcp", "TCP echo server: 4 clients on loopback, one slow reader");
  tcp_options server_opts;
  server_opts.write_buffer = server_write_buffer;
  server_opts.socket_buffer = 8 * 1024;
  auto listener = spawn_tcp_listener(rt, "127.0.0.1", 0, server_opts);
  caf::scoped_actor self{rt.system()};
  caf::actor main = self;
  uint16_t port = 0;
  self->request(listener, 10s, tcp_port_atom::value)
    .receive([&](uint16_t p) { port = p; }, [](caf::error&) {});
  say("listening on 127.0.0.1, port ", port != 0 ? "chosen by the kernel" : "?");
  // The server: accepts `clients` connections, one echo actor each.
  rt.system().spawn([=](caf::event_based_actor* srv, int) -> caf::behavior {
    srv->send(srv, size_t{0});
    return {[=](size_t n) {
      if (n == clients) {
        srv->quit();
        return;
      }
      srv->request(listener, caf::infinite, accept_atom::value)
        .then([=](tcp_connection conn) {
          say("server: accepted connection ", n);
          if (n == slow_client)
            caf::anon_send(main, conn); // main watches its stats
          auto pushed = std::make_shared<uint64_t>(0);
          srv->spawn([=](caf::event_based_actor* e, int) -> caf::behavior {
            echo(e, conn, n, pushed, main);
            return {[](int) {}};
          }, 0);
          srv->send(srv, n + 1);
        });
    }};
  }, 0);
  // Connect one at a time: the server's connection n is client n.
  std::vector<tcp_connection> conns;
  for (size_t c = 0; c < clients; ++c) {
    tcp_options o;
    if (c == slow_client) {
      o.read_chunk = 4 * 1024;
      o.socket_buffer = 8 * 1024;
    }
    conns.push_back(spawn_tcp_connect(rt, "127.0.0.1", port, o));
    self->request(conns.back(), 10s, connected_atom::value)
      .receive([](std::string&) {}, [](caf::error&) {});
  }
  caf::timespan pause = opts.scaled(10ms);
  std::vector<caf::actor> actors;
  for (size_t c = 0; c < clients; ++c)
    actors.push_back(rt.system().spawn(client, conns[c], c, pause, main));
  std::vector<size_t> order;
  std::vector<tcp_stats> stats(clients);
  tcp_connection slow_conn; // the server's side
  bool have_slow_conn = false;
  size_t taken = 0;
  auto take = [&] {
    self->receive([&](caf::ok_atom, size_t c) { order.push_back(c); },
                  [&](size_t n, const tcp_stats& st) { stats[n] = st; },
                  [&](tcp_connection& conn) {
                    slow_conn = std::move(conn);
                    have_slow_conn = true;
                  });
    ++taken;
  };
  // The slow client starts reading once the others have finished and the
  // server has held a write to it back.
  while (order.size() < clients - 1 || !have_slow_conn)
    take();
  for (uint64_t pushed = 0; pushed == 0;) {
    self->request(slow_conn, 10s, tcp_stats_atom::value)
      .receive([&](const tcp_stats& st) { pushed = st.writes_pushed_back; },
               [](caf::error&) {});
    if (pushed == 0)
      std::this_thread::sleep_for(1ms);
  }
  caf::anon_send(actors[slow_client], caf::get_atom::value);
  while (taken < 2 * clients + 1)
    take();
  say("the slow reader finished last: ",
      order.back() == slow_client ? "yes" : "no");
  say("server writes pushed back: ", stats[slow_client].writes_pushed_back,
      " to the slow reader, ", [&] {
        uint64_t n = 0;
        for (size_t c = 0; c < clients; ++c)
          if (c != slow_client)
            n += stats[c].writes_pushed_back;
        return n;
      }(), " to the others");
  uint64_t peak = 0;
  for (auto& st : stats)
    peak = std::max(peak, st.peak_write_buffered);
  say("every socket was watched by weave's I/O thread 'weave-tcp' (epoll); "
      "the clients' read answers ran ", answers_on_io_thread.load(),
      " times on it (a readiness answered them) and ",
      answers_on_scheduler.load(),
      " times on scheduler threads (the bytes were there already, or the "
      "chain had used its turns)");
  say("server write buffer never above its bound (", server_write_buffer,
      " bytes): ", peak <= server_write_buffer ? "yes" : "no");
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::section_tcp)
