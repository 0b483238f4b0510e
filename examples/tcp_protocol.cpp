// TCP protocols (asyncio's Protocol/Transport): a line server that answers
// each line in upper case, and three clients, all written as
// `tcp_protocol`s whose callbacks run inside their connection's actor — no
// request or answer per read or write. Each line is tagged with the thread
// that printed it: a callback runs on the TCP I/O thread `weave-tcp` (the
// readiness it answers) or a scheduler thread. The last client streams
// 4 MiB to a server that reads slowly, and its producer (`writable`) is held
// back: the write buffer stays within its bound.
#include <algorithm>
#include <cctype>
#include <deque>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "actors/tcp_protocol.hpp"
#include "caf/all.hpp"
#include "examples/example.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;

namespace weave_examples {

namespace {

/// The server's protocol: one per connection; lines in, upper case out.
struct upper_server : tcp_protocol {
  std::string partial;

  void connected(tcp_transport& t) override {
    say("server: connection from ", t.peer());
  }
  void data_received(tcp_transport& t, const char* data, size_t n) override {
    partial.append(data, n);
    size_t nl;
    while ((nl = partial.find('\n')) != std::string::npos) {
      auto line = partial.substr(0, nl);
      partial.erase(0, nl + 1);
      say("server: got '", line, "'");
      std::transform(line.begin(), line.end(), line.begin(),
                     [](unsigned char c) { return std::toupper(c); });
      t.write(line + "\n");
    }
  }
  // eof_received: the default closes once the answers are sent.
};

/// A client: two lines, a half-close, and the answers until the server
/// closes.
struct line_client : tcp_protocol {
  std::string name;
  std::string answers;
  std::promise<std::string>* done;

  line_client(std::string name, std::promise<std::string>* done)
    : name(std::move(name)), done(done) {}

  void connected(tcp_transport& t) override {
    say(name, ": connected; sending two lines");
    t.write("hello from " + name + "\n");
    t.write("bye\n");
    t.shutdown_write();
  }
  void data_received(tcp_transport&, const char* data, size_t n) override {
    answers.append(data, n);
  }
  void connection_lost(const caf::error& reason) override {
    std::replace(answers.begin(), answers.end(), '\n', '|');
    say(name, ": answers '", answers, "', connection ended ",
        reason ? weave::render(reason) : std::string{"cleanly"});
    done->set_value(answers);
  }
};

constexpr size_t stream_bytes = 4 * 1024 * 1024;
constexpr size_t stream_chunk = 64 * 1024;
constexpr size_t stream_bound = 128 * 1024;

/// A producer: a chunk per `writable`, called only while what it wrote so
/// far has gone to the kernel.
struct producer : tcp_protocol {
  std::vector<char> chunk = std::vector<char>(stream_chunk, 'z');
  size_t sent = 0;
  size_t calls = 0;
  size_t peak = 0;
  size_t waits = 0;
  std::promise<void>* done;

  explicit producer(std::promise<void>* done) : done(done) {}

  void connected(tcp_transport& t) override {
    say("producer: connected; streaming ", stream_bytes, " bytes");
    t.want_writable(true);
  }
  void writable(tcp_transport& t) override {
    ++calls;
    if (sent == stream_bytes) {
      t.close(); // after the buffered bytes
      return;
    }
    t.write(chunk.data(), chunk.size());
    sent += chunk.size();
    peak = std::max(peak, t.write_buffered());
    if (t.write_buffered() > 0)
      ++waits; // the kernel took part: no call until the rest is sent
  }
  void data_received(tcp_transport&, const char*, size_t) override {}
  void connection_lost(const caf::error& reason) override {
    say("producer: ", sent, " bytes in ", calls, " writable() calls, ",
        waits, " of them left bytes waiting for the slow server; most ever "
        "in its write buffer: ", peak, " bytes (bound ", stream_bound,
        "): ", peak <= stream_bound ? "within" : "OVER", "; ended ",
        reason ? weave::render(reason) : std::string{"cleanly"});
    done->set_value();
  }
};

/// Answers each `int` request `pause` after it came (a timer as an actor).
caf::behavior pacer(caf::event_based_actor* self, caf::timespan pause) {
  auto waiting = std::make_shared<std::deque<caf::response_promise>>();
  return {
    [=](int) {
      waiting->push_back(self->make_response_promise());
      self->delayed_send(self, pause, caf::ok_atom::value);
      return waiting->back();
    },
    [=](caf::ok_atom) {
      auto rp = waiting->front();
      waiting->pop_front();
      rp.deliver(0);
    },
  };
}

/// The slow server: after each 256 KiB it pauses reading until its pacer
/// answers (a request from the connection's actor, `t.self()`: the `then`
/// runs in that actor, where the transport may be used, and never after
/// `connection_lost`).
struct slow_sink : tcp_protocol {
  size_t got = 0;
  caf::timespan pause;
  caf::actor pace;
  std::promise<size_t>* done;

  slow_sink(caf::timespan pause, std::promise<size_t>* done)
    : pause(pause), done(done) {}

  void connected(tcp_transport& t) override {
    pace = t.self()->spawn(pacer, pause);
  }
  void data_received(tcp_transport& t, const char*, size_t n) override {
    auto before = got / (256 * 1024);
    got += n;
    if (got / (256 * 1024) != before) {
      t.pause_reading();
      t.self()->request(pace, caf::infinite, 0).then([&t](int) {
        t.resume_reading();
      });
    }
  }
  void connection_lost(const caf::error&) override {
    caf::anon_send_exit(pace, caf::exit_reason::user_shutdown);
    done->set_value(got);
  }
};

} // namespace

void section_tcp_protocol(weave::runtime& rt, const options& opts) {
  section("tcp-protocol",
          "TCP protocols: callbacks inside the connection's actor");
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [] {
    return std::make_unique<upper_server>();
  });
  caf::scoped_actor self{rt.system()};
  uint16_t port = 0;
  self->request(server, 10s, tcp_port_atom::value)
    .receive([&](uint16_t p) { port = p; }, [](caf::error&) {});
  say("line server listening on 127.0.0.1");
  std::vector<std::promise<std::string>> answers(3);
  for (size_t c = 0; c < answers.size(); ++c)
    spawn_tcp_connect(rt, "127.0.0.1", port,
                      std::make_unique<line_client>(
                        "client " + std::to_string(c), &answers[c]));
  for (auto& a : answers)
    a.get_future().wait();
  say("all three clients got their answers");

  // The stream: a producer to a server that reads slowly.
  std::promise<size_t> sunk;
  tcp_options sink_opts;
  auto sink = spawn_tcp_server(
    rt, "127.0.0.1", 0,
    [&sunk, pause = opts.scaled(20ms)] {
      return std::make_unique<slow_sink>(pause, &sunk);
    },
    sink_opts);
  uint16_t sink_port = 0;
  self->request(sink, 10s, tcp_port_atom::value)
    .receive([&](uint16_t p) { sink_port = p; }, [](caf::error&) {});
  std::promise<void> produced;
  tcp_options prod_opts;
  prod_opts.write_buffer = stream_bound;
  prod_opts.socket_buffer = 64 * 1024; // small kernel buffers: a visible wait
  spawn_tcp_connect(rt, "127.0.0.1", sink_port,
                    std::make_unique<producer>(&produced), prod_opts);
  produced.get_future().wait();
  say("the slow server read ", sunk.get_future().get(), " bytes");
  caf::anon_send(server, tcp_close_atom::value);
  caf::anon_send(sink, tcp_close_atom::value);
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::section_tcp_protocol)
