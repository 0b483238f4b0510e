#include "bench/weave_tcp.hpp"

#include <future>
#include <memory>
#include <string>

#include "actors/tcp.hpp"
#include "caf/all.hpp"

using namespace weave::actors;
using namespace bench::sizes;

namespace bench {

namespace {

/// A connected pair on loopback: {client, server}.
std::pair<tcp_connection, tcp_connection> connect_pair(weave::runtime& rt) {
  auto listener = spawn_tcp_listener(rt, "127.0.0.1", 0);
  caf::scoped_actor self{rt.system()};
  uint16_t port = 0;
  self->request(listener, caf::infinite, tcp_port_atom::value)
    .receive([&](uint16_t p) { port = p; }, [](caf::error&) {});
  auto client = spawn_tcp_connect(rt, "127.0.0.1", port);
  tcp_connection server;
  self->request(listener, caf::infinite, accept_atom::value)
    .receive([&](tcp_connection c) { server = c; }, [](caf::error&) {});
  self->request(client, caf::infinite, connected_atom::value)
    .receive([](std::string&) {}, [](caf::error&) {});
  caf::anon_send(listener, tcp_close_atom::value);
  return {client, server};
}

/// Echoes `tcp_message`-byte messages until the peer goes.
void echo(caf::event_based_actor* self, tcp_connection conn) {
  self->request(conn, caf::infinite, read_exact_atom::value,
                uint64_t{tcp_message})
    .then(
      [=](std::string& msg) {
        self->request(conn, caf::infinite, tcp_write_atom::value,
                      std::move(msg))
          .then([](uint64_t) {}, [](caf::error&) {});
        echo(self, conn);
      },
      [=](caf::error&) { self->quit(); });
}

/// The client's round trips: each write and read requested together, the
/// next round trip started from the read's answer (no message in between).
struct rtt_client {
  caf::event_based_actor* self = nullptr;
  tcp_connection conn;
  histogram* h = nullptr;
  std::promise<void>* done = nullptr;
  std::string msg = std::string(tcp_message, 'x');
  int i = 0;
  int total = rtt_warmup + rtt_samples;
  clock::time_point t0;

  void next(std::shared_ptr<rtt_client> me) {
    t0 = clock::now();
    self->request(conn, caf::infinite, tcp_write_atom::value, msg)
      .then([](uint64_t) {}, [](caf::error&) {});
    self->request(conn, caf::infinite, read_exact_atom::value,
                  uint64_t{tcp_message})
      .then([me](std::string&) {
        if (me->i >= rtt_warmup)
          me->h->add(clock::now() - me->t0);
        if (++me->i == me->total) {
          me->done->set_value();
          me->self->quit();
        } else {
          me->next(me);
        }
      });
  }
};

void echo_rtt(weave::runtime& rt, report& out) {
  auto [client, server] = connect_pair(rt);
  rt.system().spawn([server = server](caf::event_based_actor* self) {
    echo(self, server);
  });
  histogram h;
  h.reserve(rtt_samples);
  cpu_meter cpu;
  std::promise<void> done;
  auto total = rtt_warmup + rtt_samples;
  rt.system().spawn([&, client = client](caf::event_based_actor* self) {
    auto c = std::make_shared<rtt_client>();
    c->self = self;
    c->conn = client;
    c->h = &h;
    c->done = &done;
    c->next(c);
  });
  done.get_future().get();
  out.set("tcp_echo_rtt", "cpu_us_per_op", cpu.us_per_op(total));
  out.set("tcp_echo_rtt", "p50_us", h.percentile_us(50));
  out.set("tcp_echo_rtt", "p99_us", h.percentile_us(99));
  caf::anon_send(client, tcp_close_atom::value);
}

/// Reads (discarding) until `tcp_stream_bytes` arrived; the next read is
/// requested from the last one's answer.
void drain(caf::event_based_actor* self, tcp_connection conn,
           std::shared_ptr<size_t> got, std::promise<void>* done) {
  self->request(conn, caf::infinite, read_some_atom::value)
    .then([=](std::string& data) {
      *got += data.size();
      if (*got >= tcp_stream_bytes) {
        done->set_value();
        self->quit();
      } else {
        drain(self, conn, got, done);
      }
    });
}

/// Writes `tcp_chunk`-byte chunks, the next once the last one is buffered.
void fill(caf::event_based_actor* self, tcp_connection conn,
          std::shared_ptr<size_t> sent, std::shared_ptr<std::string> chunk) {
  if (*sent == tcp_stream_bytes) {
    self->quit();
    return;
  }
  *sent += tcp_chunk;
  self->request(conn, caf::infinite, tcp_write_atom::value, *chunk)
    .then([=](uint64_t) { fill(self, conn, sent, chunk); });
}

void stream(weave::runtime& rt, report& out) {
  auto [client, server] = connect_pair(rt);
  std::promise<void> done;
  cpu_meter cpu;
  auto t0 = clock::now();
  rt.system().spawn([&, server = server](caf::event_based_actor* self) {
    drain(self, server, std::make_shared<size_t>(0), &done);
  });
  rt.system().spawn([client = client](caf::event_based_actor* self) {
    fill(self, client, std::make_shared<size_t>(0),
         std::make_shared<std::string>(tcp_chunk, 'x'));
  });
  done.get_future().get();
  auto secs = seconds_since(t0);
  out.set("tcp_throughput", "bytes_per_s", tcp_stream_bytes / secs);
  out.set("tcp_throughput", "cpu_us_per_op",
          cpu.us_per_op(double(tcp_stream_bytes) / tcp_chunk));
  caf::anon_send(client, tcp_close_atom::value);
  caf::anon_send(server, tcp_close_atom::value);
}

} // namespace

void weave_tcp(weave::runtime& rt, bool rtt, bool throughput, report& out) {
  if (rtt)
    echo_rtt(rt, out);
  if (throughput)
    stream(rt, out);
}

} // namespace bench
