#include "bench/weave_tcp.hpp"

#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "actors/tcp.hpp"
#include "actors/tcp_protocol.hpp"
#include "caf/all.hpp"

using namespace weave::actors;
using namespace bench::sizes;

namespace bench {

namespace {

// tcp_echo_rtt_request and tcp_throughput_request: the request API, other
// actors drive each socket by requests to its connection actor (a request
// and its answer per read or write).

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

void echo_rtt_request(weave::runtime& rt, report& out) {
  auto [client, server] = connect_pair(rt);
  rt.system().spawn([server = server](caf::event_based_actor* self) {
    echo(self, server);
  });
  histogram h;
  h.reserve(rtt_samples);
  cpu_meter cpu;
  std::promise<void> done;
  auto total = rtt_warmup + rtt_samples;
  rt.system().spawn([&, client = client](caf::event_based_actor* self)
                      -> caf::behavior {
    auto i = std::make_shared<int>(0);
    auto t0 = std::make_shared<clock::time_point>();
    auto msg = std::string(tcp_message, 'x');
    self->send(self, 0);
    return {[=, &h, &done](int) {
      *t0 = clock::now();
      self->request(client, caf::infinite, tcp_write_atom::value, msg)
        .then([](uint64_t) {}, [](caf::error&) {});
      self->request(client, caf::infinite, read_exact_atom::value,
                    uint64_t{tcp_message})
        .then([=, &h, &done](std::string&) {
          if (*i >= rtt_warmup)
            h.add(clock::now() - *t0);
          if (++*i == total) {
            done.set_value();
            self->quit();
          } else {
            self->send(self, 0);
          }
        });
    }};
  });
  done.get_future().get();
  out.set("tcp_echo_rtt_request", "cpu_us_per_op", cpu.us_per_op(total));
  out.set("tcp_echo_rtt_request", "p50_us", h.percentile_us(50));
  out.set("tcp_echo_rtt_request", "p99_us", h.percentile_us(99));
  caf::anon_send(client, tcp_close_atom::value);
}

void stream_request(weave::runtime& rt, report& out) {
  auto [client, server] = connect_pair(rt);
  std::promise<void> done;
  cpu_meter cpu;
  auto t0 = clock::now();
  // As Tokio's side does (`read(&mut buf)`, `write_all(&chunk)`): one
  // vector each way, carried there and back (`read_into`, `write_all`).
  // WEAVE_TCP_COPYING=1: `read_some` and `tcp_write` of a copied chunk
  // instead (an allocation and a copy per chunk each way).
  bool copying = std::getenv("WEAVE_TCP_COPYING") != nullptr;
  // The reader: discards until everything arrived.
  rt.system().spawn([&, server = server](caf::event_based_actor* self)
                      -> caf::behavior {
    auto got = std::make_shared<size_t>(0);
    auto buf = std::make_shared<std::vector<char>>(tcp_chunk);
    auto arrived = [=, &done](size_t n) {
      *got += n;
      if (*got >= tcp_stream_bytes) {
        done.set_value();
        self->quit();
      } else {
        self->send(self, 0);
      }
    };
    self->send(self, 0);
    return {[=](int) {
      if (copying) {
        self->request(server, caf::infinite, read_some_atom::value)
          .then([=](std::string& data) { arrived(data.size()); });
        return;
      }
      buf->resize(tcp_chunk);
      self->request(server, caf::infinite, read_into_atom::value,
                    std::move(*buf))
        .then([=](std::vector<char>& data) {
          *buf = std::move(data);
          arrived(buf->size());
        });
    }};
  });
  // The writer: the next write once the last one is taken.
  rt.system().spawn([client = client, copying](caf::event_based_actor* self)
                      -> caf::behavior {
    auto sent = std::make_shared<size_t>(0);
    auto chunk = std::make_shared<std::vector<char>>(tcp_chunk, 'x');
    self->send(self, 0);
    return {[=](int) {
      if (*sent == tcp_stream_bytes) {
        self->quit();
        return;
      }
      *sent += tcp_chunk;
      if (copying) {
        self->request(client, caf::infinite, tcp_write_atom::value, *chunk)
          .then([=](uint64_t) { self->send(self, 0); });
        return;
      }
      self->request(client, caf::infinite, write_all_atom::value,
                    std::move(*chunk))
        .then([=](std::vector<char>& back) {
          *chunk = std::move(back);
          self->send(self, 0);
        });
    }};
  });
  done.get_future().get();
  auto secs = seconds_since(t0);
  out.set("tcp_throughput_request", "bytes_per_s", tcp_stream_bytes / secs);
  out.set("tcp_throughput_request", "cpu_us_per_op",
          cpu.us_per_op(double(tcp_stream_bytes) / tcp_chunk));
  // WEAVE_TCP_STATS=1: both ends' counters on stderr (after the
  // measure), to see how often the writer was held back and the reader
  // waited for readiness.
  if (std::getenv("WEAVE_TCP_STATS") != nullptr) {
    caf::scoped_actor self{rt.system()};
    for (auto& [name, conn] : {std::pair{"client", client},
                               std::pair{"server", server}})
      self->request(conn, caf::infinite, tcp_stats_atom::value)
        .receive(
          [&, name = name](tcp_stats& st) {
            std::fprintf(stderr,
                         "%s: pushed_back %llu reads_waited %llu peak_write "
                         "%llu peak_read %llu\n",
                         name, (unsigned long long) st.writes_pushed_back,
                         (unsigned long long) st.reads_waited,
                         (unsigned long long) st.peak_write_buffered,
                         (unsigned long long) st.peak_read_buffered);
          },
          [](caf::error&) {});
  }
  caf::anon_send(client, tcp_close_atom::value);
  caf::anon_send(server, tcp_close_atom::value);
}

// tcp_echo_rtt and tcp_throughput: `tcp_protocol`s, the echo and the stream
// run inside the connections' own actors (no request, no answer per read or
// write), as asio's handlers and Tokio's tasks own their sockets.

struct echo_protocol : tcp_protocol {
  void data_received(tcp_transport& t, const char* p, size_t n) override {
    t.write(p, n);
  }
};

/// The client: a 64-byte message, its echo, the next one.
struct ping_protocol : tcp_protocol {
  histogram* h;
  std::promise<void>* done;
  std::string msg = std::string(tcp_message, 'x');
  size_t got = 0;
  int i = 0;
  int total = rtt_warmup + rtt_samples;
  clock::time_point t0;

  ping_protocol(histogram* h, std::promise<void>* done) : h(h), done(done) {}

  void connected(tcp_transport& t) override {
    t0 = clock::now();
    t.write(msg);
  }
  void data_received(tcp_transport& t, const char*, size_t n) override {
    got += n;
    if (got < tcp_message)
      return;
    got -= tcp_message;
    if (i >= rtt_warmup)
      h->add(clock::now() - t0);
    if (++i == total) {
      t.close();
      done->set_value();
      return;
    }
    t0 = clock::now();
    t.write(msg);
  }
};

uint16_t port_of(weave::runtime& rt, const tcp_listener& l) {
  caf::scoped_actor self{rt.system()};
  uint16_t port = 0;
  self->request(l, caf::infinite, tcp_port_atom::value)
    .receive([&](uint16_t p) { port = p; }, [](caf::error&) {});
  return port;
}

void echo_rtt(weave::runtime& rt, report& out) {
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [] {
    return std::make_unique<echo_protocol>();
  });
  auto port = port_of(rt, server);
  histogram h;
  h.reserve(rtt_samples);
  std::promise<void> done;
  cpu_meter cpu;
  spawn_tcp_connect(rt, "127.0.0.1", port,
                    std::make_unique<ping_protocol>(&h, &done));
  done.get_future().get();
  auto total = rtt_warmup + rtt_samples;
  out.set("tcp_echo_rtt", "cpu_us_per_op", cpu.us_per_op(total));
  out.set("tcp_echo_rtt", "p50_us", h.percentile_us(50));
  out.set("tcp_echo_rtt", "p99_us", h.percentile_us(99));
  caf::anon_send(server, tcp_close_atom::value);
}

/// The writer: one 64 KiB chunk per `writable`, sent from the same memory.
struct producer_protocol : tcp_protocol {
  std::vector<char> chunk = std::vector<char>(tcp_chunk, 'x');
  size_t sent = 0;

  void connected(tcp_transport& t) override { t.want_writable(true); }
  void writable(tcp_transport& t) override {
    if (sent == tcp_stream_bytes) {
      t.close();
      return;
    }
    sent += tcp_chunk;
    t.write(chunk.data(), chunk.size());
  }
  void data_received(tcp_transport&, const char*, size_t) override {}
};

/// The reader: counts and discards.
struct sink_protocol : tcp_protocol {
  std::promise<void>* done;
  size_t got = 0;

  explicit sink_protocol(std::promise<void>* done) : done(done) {}

  void data_received(tcp_transport& t, const char*, size_t n) override {
    got += n;
    if (got == tcp_stream_bytes) {
      done->set_value();
      t.close();
    }
  }
};

void stream(weave::runtime& rt, report& out) {
  std::promise<void> done;
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&done] {
    return std::make_unique<sink_protocol>(&done);
  });
  auto port = port_of(rt, server);
  cpu_meter cpu;
  auto t0 = clock::now();
  spawn_tcp_connect(rt, "127.0.0.1", port,
                    std::make_unique<producer_protocol>());
  done.get_future().get();
  auto secs = seconds_since(t0);
  out.set("tcp_throughput", "bytes_per_s", tcp_stream_bytes / secs);
  out.set("tcp_throughput", "cpu_us_per_op",
          cpu.us_per_op(double(tcp_stream_bytes) / tcp_chunk));
  caf::anon_send(server, tcp_close_atom::value);
}

} // namespace

void weave_tcp(weave::runtime& rt, bool rtt, bool throughput, report& out) {
  if (rtt)
    echo_rtt(rt, out);
  if (throughput)
    stream(rt, out);
}

void weave_tcp_request(weave::runtime& rt, bool rtt, bool throughput,
                       report& out) {
  if (rtt)
    echo_rtt_request(rt, out);
  if (throughput)
    stream_request(rt, out);
}

} // namespace bench
