// Hostile review 2 of the gathering I/O thread: a producer's next turn
// under interleaved writes and want_writable toggles, more_job outstanding
// at close and shutdown, and the request API on many connections under
// `always`.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "actors/tcp_protocol.hpp"
#include "caf/all.hpp"
#include "runtime/error.hpp"
#include "runtime/runtime.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_inline_support.hpp"
#include "tests/tcp_protocol_support.hpp"
#include "tests/tcp_review_support.hpp"
#include "tests/tcp_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using namespace weave::test::tcp;
using namespace weave::test::proto;
using weave::test::latch;
using weave::test::patience;

namespace {

using clk = std::chrono::steady_clock;


std::string line(char tag, int src, int seq) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%c%d:%07d\n", tag, src, seq);
  return buf;
}

/// Writes `lines` numbered lines, `per_call` per writable() call; then
/// writes nothing (writable off) and notes "done".
struct line_producer : recording {
  int lines;
  int per_call;
  int next = 0;
  line_producer(journal* j, int n, int per) : recording(j), lines(n),
                                              per_call(per) {}
  void connected(tcp_transport& t) override {
    j->event("connected");
    t.want_writable(true);
  }
  void writable(tcp_transport& t) override {
    if (next == lines) {
      j->event("done");
      return;
    }
    std::string out;
    for (int k = 0; k < per_call && next < lines; ++k)
      out += line('P', 0, next++);
    if (!t.write(out.data(), out.size()))
      j->event("refused");
  }
};

/// Checks that `text` is whole lines, each source's in order from 0;
/// returns the count per source ("P0", "W1", ...) or an error text.
std::string check_lines(const std::string& text,
                        std::map<std::string, int>& counts) {
  std::istringstream in{text};
  std::string l;
  while (std::getline(in, l)) {
    auto colon = l.find(':');
    if (colon == std::string::npos || l.size() != colon + 8)
      return "torn line: " + l.substr(0, 40);
    auto src = l.substr(0, colon);
    int seq = std::stoi(l.substr(colon + 1));
    if (seq != counts[src])
      return "out of order: " + l + " expected " + std::to_string(counts[src]);
    ++counts[src];
  }
  return "";
}

} // namespace

// ---- 1. A producer with other actors' tcp_writes on its connection.

TEST_CASE("gather review 2: a line producer and 3 actors' tcp_writes on one "
          "connection: every line whole, each source in order, producer "
          "finishes, for always/never and turns 1, 8"
          * doctest::timeout(180)) {
  for (auto mode : {"always", "never"}) {
    for (size_t turns : {size_t{1}, size_t{8}}) {
      CAPTURE(mode);
      CAPTURE(turns);
      constexpr int plines = 200000;
      constexpr int wlines = 3000;
      journal j;
      weave::runtime rt{turns_config(turns, mode)};
      raw_listener l;
      auto conn = spawn_tcp_connect(
        rt, "127.0.0.1", l.port,
        std::make_unique<line_producer>(&j, plines, 500));
      int fd = l.accept_one();
      std::atomic<int> write_errors{0};
      latch writers_done{3};
      for (int w = 1; w <= 3; ++w) {
        rt.system().spawn([=, &write_errors, &writers_done](
                            caf::event_based_actor* self) -> caf::behavior {
          auto seq = std::make_shared<int>(0);
          self->send(self, 0);
          return {[=, &write_errors, &writers_done](int) {
            if (*seq == wlines) {
              writers_done.count_down();
              self->quit();
              return;
            }
            self->request(conn, caf::infinite, tcp_write_atom::value,
                          line('W', w, (*seq)++))
              .then([=](uint64_t) { self->send(self, 0); },
                    [=, &write_errors, &writers_done](caf::error&) {
                      ++write_errors;
                      writers_done.count_down();
                      self->quit();
                    });
          }};
        });
      }
      size_t total = static_cast<size_t>(plines) * line('P', 0, 0).size()
                     + 3 * static_cast<size_t>(wlines)
                         * line('W', 1, 0).size();
      auto got = read_n(fd, total);
      CHECK(got.size() == total);
      CHECK(writers_done.wait(patience));
      CHECK(write_errors == 0);
      std::map<std::string, int> counts;
      CHECK(check_lines(got, counts) == "");
      CHECK(counts["P0"] == plines);
      CHECK(counts["W1"] == wlines);
      CHECK(counts["W2"] == wlines);
      CHECK(counts["W3"] == wlines);
      CHECK(weave::test::eventually(
        [&] { return j.log().find("done") != std::string::npos; }));
      CHECK(j.log().find("refused") == std::string::npos);
      CHECK(j.lost == 0);
      caf::anon_send(conn, tcp_close_atom::value);
      CHECK(j.lost_latch.wait(patience));
      ::close(fd);
    }
  }
}

// ---- 1b. want_writable turned off in writable() and on from a then.

TEST_CASE("gather review 2: a producer that turns writable off every third "
          "call and on from a then (reading paused meanwhile): 16 MiB whole, "
          "for always/never and turns 1, 8" * doctest::timeout(180)) {
  for (auto mode : {"always", "never"}) {
    for (size_t turns : {size_t{1}, size_t{8}}) {
      CAPTURE(mode);
      CAPTURE(turns);
      journal j;
      weave::runtime rt{turns_config(turns, mode)};
      auto trigger = echo_int(rt);
      struct toggler : recording {
        std::string data = pattern_text(16 << 20, 4);
        size_t off = 0;
        int calls = 0;
        caf::actor trigger;
        toggler(journal* j, caf::actor a) : recording(j), trigger(a) {}
        void connected(tcp_transport& t) override {
          t.want_writable(true);
        }
        void writable(tcp_transport& t) override {
          if (off == data.size()) {
            t.close();
            return;
          }
          if (++calls % 3 == 0) {
            t.pause_reading();
            // writes nothing: writable off until the then
            t.self()->request(trigger, caf::infinite, calls)
              .then([&t](int) {
                t.resume_reading();
                t.want_writable(true);
              });
            return;
          }
          auto n = std::min<size_t>(40000 + calls % 5000, data.size() - off);
          t.write(data.data() + off, n);
          off += n;
        }
      };
      raw_listener l;
      spawn_tcp_connect(rt, "127.0.0.1", l.port,
                        std::make_unique<toggler>(&j, trigger));
      int fd = l.accept_one();
      auto [got, code] = read_all(fd);
      CHECK(code == 0);
      CHECK(got.size() == size_t{16 << 20});
      CHECK(got == pattern_text(16 << 20, 4));
      CHECK(j.lost_latch.wait(patience));
      CHECK_MESSAGE(!j.reason, weave::render(j.reason));
      ::close(fd);
      caf::anon_send_exit(trigger, caf::exit_reason::user_shutdown);
    }
  }
}

// ---- 1c. A producer and a peer that sends to it, turns 1, always: the
// nothing_to_read skip with a paused/resumed reader.

TEST_CASE("gather review 2: producer plus 8 MiB from the peer, reading "
          "paused every data_received and resumed from a then, always and "
          "turns 1" * doctest::timeout(120)) {
  journal j;
  weave::runtime rt{turns_config(1, "always")};
  auto trigger = echo_int(rt);
  struct both : recording {
    std::string data = pattern_text(8 << 20, 6);
    size_t off = 0;
    caf::actor trigger;
    both(journal* j, caf::actor a) : recording(j), trigger(a) {}
    void connected(tcp_transport& t) override {
      t.want_writable(true);
    }
    void writable(tcp_transport& t) override {
      if (off == data.size()) {
        t.shutdown_write();
        return;
      }
      auto n = std::min<size_t>(30000, data.size() - off);
      t.write(data.data() + off, n);
      off += n;
    }
    void data_received(tcp_transport& t, const char* p, size_t n) override {
      j->got(p, n);
      t.pause_reading();
      t.self()->request(trigger, caf::infinite, 1).then([&t](int) {
        t.resume_reading();
      });
    }
    void eof_received(tcp_transport&) override {
      j->event("eof");
    }
  };
  auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<both>(&j, trigger);
  });
  caf::scoped_actor self{rt.system()};
  int fd = dial(port_of(self, server));
  auto out = pattern_text(8 << 20, 9);
  auto sender = std::async(std::launch::async, [&] {
    send_all(fd, out);
    ::shutdown(fd, SHUT_WR);
    return true;
  });
  auto [back, code] = read_all(fd);
  REQUIRE(sender.wait_for(patience) == std::future_status::ready);
  CHECK(code == 0);
  CHECK(back == pattern_text(8 << 20, 6));
  REQUIRE(j.lost_latch.wait(patience));
  CHECK(j.text() == out);
  CHECK_MESSAGE(!j.reason, weave::render(j.reason));
  ::close(fd);
  caf::anon_send_exit(trigger, caf::exit_reason::user_shutdown);
}

// ---- 2. more_job outstanding when the connection ends or the runtime
// shuts down (never: every turn over 1 MiB queues one).

namespace {

struct endless2 : recording {
  std::string data = pattern_text(65536, 5);
  endless2(journal* j) : recording(j) {}
  void connected(tcp_transport& t) override {
    t.want_writable(true);
  }
  void writable(tcp_transport& t) override {
    t.write(data.data(), data.size());
  }
};

} // namespace

TEST_CASE("gather review 2: peer resets mid-stream, then shutdown with "
          "producers yielding: each told once, destroyed, shutdown prompt "
          "(1 and 2 scheduler threads, never and always)"
          * doctest::timeout(180)) {
  for (auto mode : {"never", "always"}) {
    for (size_t threads : {size_t{1}, size_t{2}}) {
      for (size_t turns : {size_t{1}, size_t{8}}) {
        CAPTURE(mode);
        CAPTURE(threads);
        CAPTURE(turns);
        journal cut_j;
        journal live_j[3];
        clk::duration took{};
        {
          weave::runtime rt{turns_config(turns, mode, threads)};
          raw_listener l;
          spawn_tcp_connect(rt, "127.0.0.1", l.port,
                            std::make_unique<endless2>(&cut_j));
          int cut = l.accept_one();
          std::vector<int> fds;
          std::vector<std::thread> readers;
          std::atomic<uint64_t> drained{0};
          for (auto& lj : live_j) {
            spawn_tcp_connect(rt, "127.0.0.1", l.port,
                              std::make_unique<endless2>(&lj));
            fds.push_back(l.accept_one());
          }
          for (int fd : fds)
            readers.emplace_back([fd, &drained] {
              std::vector<char> buf(1 << 20);
              for (;;) {
                auto n = ::recv(fd, buf.data(), buf.size(), 0);
                if (n <= 0)
                  break;
                drained += static_cast<uint64_t>(n);
              }
            });
          // The cut connection streams a while, then the peer resets.
          auto got = read_n(cut, 4 << 20);
          CHECK(got.size() == size_t{4 << 20});
          linger lg{1, 0};
          ::setsockopt(cut, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
          ::close(cut);
          CHECK(cut_j.lost_latch.wait(patience));
          CHECK(cut_j.reason); // a reset is a failure
          REQUIRE(weave::test::eventually(
            [&] { return drained.load() > (24u << 20); }));
          auto t0 = clk::now();
          rt.shutdown();
          took = clk::now() - t0;
          for (int fd : fds)
            ::shutdown(fd, SHUT_RDWR);
          for (auto& r : readers)
            r.join();
          for (int fd : fds)
            ::close(fd);
        }
        CHECK(took < 3s);
        CHECK(cut_j.lost == 1);
        CHECK(cut_j.alive == 0);
        for (auto& lj : live_j) {
          CHECK(lj.lost == 1);
          CHECK(lj.alive == 0);
        }
      }
    }
  }
}

// ---- 3. The request API on many connections under always.

TEST_CASE("gather review 2: 48 request-API echo clients under always, turns "
          "1 and 8, 2 threads: all bytes back in order, no slow handler"
          * doctest::timeout(180)) {
  for (size_t turns : {size_t{1}, size_t{8}}) {
    CAPTURE(turns);
    weave::test::failures bad;
    weave::runtime rt{turns_config(turns, "always", 2)};
    auto listener = spawn_tcp_listener(rt, "127.0.0.1", 0);
    caf::scoped_actor self{rt.system()};
    auto port = ask<uint16_t>(self, listener, tcp_port_atom::value);
    REQUIRE(port);
    constexpr size_t clients = 48;
    auto conns = std::make_shared<server_conns>();
    serve_echo(rt.system(), listener, clients, conns, &bad);
    latch done{clients};
    auto order = std::make_shared<finish_order>();
    auto t0 = clk::now();
    for (size_t i = 0; i < clients; ++i) {
      client_plan plan;
      plan.id = i;
      plan.bytes = 512 * 1024;
      plan.chunk = 4096 + i * 97;
      auto conn = spawn_tcp_connect(rt, "127.0.0.1", *port);
      run_client(rt.system(), conn, plan, &bad, &done, order);
    }
    REQUIRE(done.wait(60s));
    auto took = clk::now() - t0;
    MESSAGE("turns " << turns << ": "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(
                          took).count()
                     << " ms");
    CHECK(bad.messages() == "");
    CHECK(rt.slow_handlers() == 0);
  }
}

TEST_CASE("gather review 2: under always, a hog producer does not starve "
          "16 request-API echo clients on the same runtime"
          * doctest::timeout(120)) {
  weave::test::failures bad;
  std::atomic<uint64_t> sunk{0};
  journal hog_j;
  journal sink_j;
  weave::runtime rt{turns_config(8, "always", 2)};
  caf::scoped_actor self{rt.system()};
  struct counting : recording {
    std::atomic<uint64_t>* n;
    counting(journal* j, std::atomic<uint64_t>* c) : recording(j), n(c) {}
    void data_received(tcp_transport&, const char*, size_t k) override {
      *n += k;
    }
  };
  auto sinks = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<counting>(&sink_j, &sunk);
  });
  spawn_tcp_connect(rt, "127.0.0.1", port_of(self, sinks),
                    std::make_unique<endless2>(&hog_j));
  REQUIRE(weave::test::eventually([&] { return sunk.load() > (16u << 20); }));
  auto listener = spawn_tcp_listener(rt, "127.0.0.1", 0);
  auto port = ask<uint16_t>(self, listener, tcp_port_atom::value);
  REQUIRE(port);
  constexpr size_t clients = 16;
  auto conns = std::make_shared<server_conns>();
  serve_echo(rt.system(), listener, clients, conns, &bad);
  latch done{clients};
  auto before = sunk.load();
  auto t0 = clk::now();
  for (size_t i = 0; i < clients; ++i) {
    client_plan plan;
    plan.id = i;
    plan.bytes = 256 * 1024;
    plan.chunk = 8192;
    auto conn = spawn_tcp_connect(rt, "127.0.0.1", *port);
    run_client(rt.system(), conn, plan, &bad, &done, nullptr);
  }
  CHECK(done.wait(30s));
  auto took = clk::now() - t0;
  auto during = sunk.load() - before;
  MESSAGE("clients took "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
          << " ms; hog sent " << (during >> 20) << " MiB meanwhile");
  CHECK(bad.messages() == "");
  CHECK(took < 10s);
  CHECK(during > 0); // the hog was not starved either
  CHECK(rt.slow_handlers() == 0);
}
