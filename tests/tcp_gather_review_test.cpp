// Hostile review of the gathering I/O thread (s16-gather): io_unit's queue
// of kept jobs (`weave.tcp-gather`), a protocol's producer that yields its
// turn (`more_job`), one recv per gathered turn, and the writable-only
// readiness that skips a recv (`nothing_to_read`).
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
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "actors/tcp_protocol.hpp"
#include "caf/all.hpp"
#include "runtime/error.hpp"
#include "runtime/runtime.hpp"
#include "runtime/weave.hpp"
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

/// Writes `text` to a config file at `path`; removes it when done.
class temp_file {
public:
  temp_file(std::string path, const std::string& text)
    : path_(std::move(path)) {
    std::ofstream out{path_};
    out << text;
  }
  ~temp_file() {
    std::remove(path_.c_str());
  }
  const std::string& path() const {
    return path_;
  }

private:
  std::string path_;
};

caf::error parse(weave::runtime_config& cfg, std::vector<std::string> args) {
  std::vector<char*> argv;
  std::string prog = "weave_test";
  argv.push_back(prog.data());
  for (auto& a : args)
    argv.push_back(a.data());
  return cfg.parse(static_cast<int>(argv.size()), argv.data());
}

std::string construction_error(weave::runtime_config cfg) {
  try {
    weave::runtime rt{std::move(cfg)};
  } catch (const weave::exception& e) {
    return e.what();
  }
  return "";
}


/// Writes `total` bytes of pattern `id` from writable(), then closes.
struct producer : recording {
  std::string data;
  size_t off = 0;
  size_t chunk;
  producer(journal* j, size_t total, size_t id, size_t chunk = 40000)
    : recording(j), data(pattern_text(total, id)), chunk(chunk) {}
  void connected(tcp_transport& t) override {
    j->event("connected");
    t.want_writable(true);
  }
  void writable(tcp_transport& t) override {
    if (off == data.size()) {
      t.close();
      return;
    }
    auto n = std::min(chunk + off % 777, data.size() - off);
    if (!t.write(data.data() + off, n))
      j->event("refused");
    off += n;
  }
};

/// Writes for ever (64 KiB pieces) until `stop`, then closes.
struct endless : recording {
  std::string data;
  std::atomic<bool>* stop;
  endless(journal* j, std::atomic<bool>* s, size_t chunk = 65536)
    : recording(j), data(pattern_text(chunk, 5)), stop(s) {}
  void connected(tcp_transport& t) override {
    j->event("connected");
    t.want_writable(true);
  }
  void writable(tcp_transport& t) override {
    if (stop != nullptr && stop->load()) {
      t.close();
      return;
    }
    t.write(data.data(), data.size());
  }
};

/// Counts bytes only (a sink for long streams).
struct counting_sink : recording {
  std::atomic<uint64_t>* n;
  counting_sink(journal* j, std::atomic<uint64_t>* c) : recording(j), n(c) {}
  void data_received(tcp_transport&, const char*, size_t k) override {
    *n += k;
  }
};


} // namespace

// ---- Config.

TEST_CASE("gather review: weave.tcp-gather accepts auto, always, never; "
          "anything else is refused naming the option") {
  for (auto mode : {"auto", "always", "never"}) {
    CAPTURE(mode);
    weave::runtime_config cfg;
    REQUIRE(!parse(cfg, {std::string{"--weave.tcp-gather="} + mode}));
    CHECK(cfg.tcp_gather() == mode);
  }
  CHECK(weave::runtime_config{}.tcp_gather() == "auto");
  for (auto arg : {"--weave.tcp-gather=sometimes", "--weave.tcp-gather=ALWAYS",
                   "--weave.tcp-gather=", "--weave.tcp-gather=1"}) {
    CAPTURE(arg);
    weave::runtime_config cfg;
    auto err = parse(cfg, {arg});
    REQUIRE(err);
    CHECK(weave::is(err, weave::errc::invalid_config));
    CHECK(weave::render(err).find("weave.tcp-gather") != std::string::npos);
  }
  {
    weave::runtime_config in_code;
    in_code.set("weave.tcp-gather", std::string{"bogus"});
    auto what = construction_error(std::move(in_code));
    CHECK(what.find("weave.tcp-gather") != std::string::npos);
    CHECK(what.find("bogus") != std::string::npos);
  }
  {
    temp_file file{"weave_gather_review.ini", "[weave]\ntcp-gather=\"often\"\n"};
    weave::runtime_config cfg;
    auto err = parse(cfg, {"--config-file=" + file.path()});
    REQUIRE(err);
    CHECK(weave::render(err).find("weave.tcp-gather") != std::string::npos);
  }
}

// ---- Bytes in order, every mode and turn budget.

TEST_CASE("gather review: a producer to a protocol sink, 16 MB in order, "
          "each side told once, for every mode and turns 0, 1, 2, 8, 1024"
          * doctest::timeout(240)) {
  for (auto mode : {"always", "never", "auto"}) {
    for (size_t turns : {size_t{0}, size_t{1}, size_t{2}, size_t{8},
                         size_t{1024}}) {
      CAPTURE(mode);
      CAPTURE(turns);
      journal sink_j;
      journal prod_j;
      weave::runtime rt{turns_config(turns, mode)};
      caf::scoped_actor self{rt.system()};
      auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
        return std::make_unique<recording>(&sink_j);
      });
      spawn_tcp_connect(rt, "127.0.0.1", port_of(self, server),
                        std::make_unique<producer>(&prod_j, 16 << 20, turns));
      REQUIRE(prod_j.lost_latch.wait(patience));
      REQUIRE(sink_j.lost_latch.wait(patience));
      CHECK(sink_j.text() == pattern_text(16 << 20, turns));
      CHECK_MESSAGE(!prod_j.reason, weave::render(prod_j.reason));
      CHECK_MESSAGE(!sink_j.reason, weave::render(sink_j.reason));
      CHECK(prod_j.lost == 1);
      CHECK(sink_j.lost == 1);
      CHECK(prod_j.log().find("refused") == std::string::npos);
      CHECK(weave::test::eventually([&] {
        return prod_j.alive.load() == 0 && sink_j.alive.load() == 0;
      }));
    }
  }
}

TEST_CASE("gather review: protocols on both ends echo 4 MB under always, "
          "turns 1 and 8") {
  for (size_t turns : {size_t{1}, size_t{8}}) {
    CAPTURE(turns);
    journal server_j;
    journal client_j;
    weave::runtime rt{turns_config(turns, "always")};
    caf::scoped_actor self{rt.system()};
    auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
      return std::make_unique<echo_rec>(&server_j);
    });
    auto data = pattern_text(4 << 20, 3);
    struct client : recording {
      const std::string* data;
      size_t seen = 0;
      client(journal* j, const std::string* d) : recording(j), data(d) {}
      void connected(tcp_transport& t) override {
        for (size_t off = 0; off < data->size(); off += 50000)
          t.write(data->data() + off,
                  std::min<size_t>(50000, data->size() - off));
        t.shutdown_write();
      }
    };
    spawn_tcp_connect(rt, "127.0.0.1", port_of(self, server),
                      std::make_unique<client>(&client_j, &data));
    REQUIRE(client_j.lost_latch.wait(patience));
    REQUIRE(server_j.lost_latch.wait(patience));
    CHECK(client_j.text() == data);
    CHECK(server_j.text() == data);
    CHECK_MESSAGE(!client_j.reason, weave::render(client_j.reason));
    CHECK_MESSAGE(!server_j.reason, weave::render(server_j.reason));
  }
}

// ---- A reader and a writer at once on one connection (nothing_to_read).

TEST_CASE("gather review: a protocol that produces 16 MB while its peer "
          "sends it 16 MB: both directions whole, for always and never, "
          "turns 1 and 8" * doctest::timeout(120)) {
  for (auto mode : {"always", "never"}) {
    for (size_t turns : {size_t{1}, size_t{8}}) {
      CAPTURE(mode);
      CAPTURE(turns);
      journal j;
      weave::runtime rt{turns_config(turns, mode)};
      caf::scoped_actor self{rt.system()};
      struct both : producer {
        both(journal* j) : producer(j, 16 << 20, 7, 30000) {}
        void writable(tcp_transport& t) override {
          if (off == data.size()) {
            t.shutdown_write();
            return; // writes nothing: writable off
          }
          producer::writable(t);
        }
        void eof_received(tcp_transport&) override {
          j->event("eof"); // no close: ends once both ways ended
        }
      };
      auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
        return std::make_unique<both>(&j);
      });
      int fd = dial(port_of(self, server));
      auto out = pattern_text(16 << 20, 8);
      auto sender = std::async(std::launch::async, [&] {
        send_all(fd, out);
        ::shutdown(fd, SHUT_WR);
        return true;
      });
      auto [back, code] = read_all(fd);
      REQUIRE(sender.wait_for(patience) == std::future_status::ready);
      CHECK(code == 0);
      CHECK(back.size() == size_t{16 << 20});
      CHECK(back == pattern_text(16 << 20, 7));
      REQUIRE(j.lost_latch.wait(patience));
      CHECK(j.text().size() == out.size());
      CHECK(j.text() == out);
      CHECK_MESSAGE(!j.reason, weave::render(j.reason));
      CHECK(j.lost == 1);
      ::close(fd);
    }
  }
}

// ---- Pause/resume and half-close while gathered.

TEST_CASE("gather review: reading paused in every data_received and resumed "
          "from a then, under always: 8 MB echoed in order") {
  for (size_t turns : {size_t{1}, size_t{8}}) {
    CAPTURE(turns);
    journal j;
    weave::runtime rt{turns_config(turns, "always")};
    caf::scoped_actor self{rt.system()};
    auto trigger = echo_int(rt);
    struct pauser : recording {
      caf::actor trigger;
      pauser(journal* j, caf::actor a) : recording(j), trigger(std::move(a)) {}
      void data_received(tcp_transport& t, const char* p, size_t n) override {
        j->got(p, n);
        t.write(p, n);
        t.pause_reading();
        t.self()->request(trigger, caf::infinite, 1).then([&t](int) {
          t.resume_reading();
        });
      }
    };
    auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
      return std::make_unique<pauser>(&j, trigger);
    });
    int fd = dial(port_of(self, server));
    auto out = pattern_text(8 << 20, 2);
    auto sender = std::async(std::launch::async, [&] {
      send_all(fd, out);
      ::shutdown(fd, SHUT_WR);
      return true;
    });
    auto [back, code] = read_all(fd);
    REQUIRE(sender.wait_for(patience) == std::future_status::ready);
    CHECK(code == 0);
    CHECK(back == out);
    REQUIRE(j.lost_latch.wait(patience));
    CHECK(j.text() == out);
    CHECK_MESSAGE(!j.reason, weave::render(j.reason));
    ::close(fd);
    caf::anon_send_exit(trigger, caf::exit_reason::user_shutdown);
  }
}

TEST_CASE("gather review: half-close echo under always: the peer gets all "
          "3 MB back and the FIN; the protocol is told once, cleanly") {
  for (size_t turns : {size_t{1}, size_t{8}}) {
    CAPTURE(turns);
    journal j;
    weave::runtime rt{turns_config(turns, "always")};
    caf::scoped_actor self{rt.system()};
    struct half : echo_rec {
      using echo_rec::echo_rec;
      void eof_received(tcp_transport& t) override {
        j->event("eof");
        t.shutdown_write();
      }
    };
    auto server = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
      return std::make_unique<half>(&j);
    });
    int fd = dial(port_of(self, server));
    auto out = pattern_text(3 << 20, 4);
    auto sender = std::async(std::launch::async, [&] {
      send_all(fd, out);
      ::shutdown(fd, SHUT_WR);
      return true;
    });
    auto [back, code] = read_all(fd);
    REQUIRE(sender.wait_for(patience) == std::future_status::ready);
    CHECK(code == 0);
    CHECK(back == out);
    REQUIRE(j.lost_latch.wait(patience));
    CHECK(j.lost == 1);
    CHECK_MESSAGE(!j.reason, weave::render(j.reason));
    CHECK(j.log() == "connected;eof;lost;");
    ::close(fd);
  }
}

// ---- Kept jobs: many made runnable by one turn on the I/O thread.

TEST_CASE("gather review: a handler on the I/O thread that wakes 40 actors: "
          "each runs once, under always with turns 1, 2, 8") {
  using hit_atom = caf::atom_constant<caf::atom("grhit")>;
  for (size_t turns : {size_t{1}, size_t{2}, size_t{8}}) {
    CAPTURE(turns);
    raw_peer p{turns_config(turns, "always")};
    auto sys = &p.rt.system();
    constexpr int n = 40;
    std::atomic<int> hits{0};
    latch all{n};
    std::vector<caf::actor> actors;
    for (int i = 0; i < n; ++i)
      actors.push_back(sys->spawn([&](caf::event_based_actor*) -> caf::behavior {
        return {[&](hit_atom) {
          ++hits;
          all.count_down();
        }};
      }));
    std::promise<std::string> where;
    auto fut = where.get_future();
    read_then(p, [&](caf::event_based_actor* self, const std::string&) {
      for (auto& a : actors)
        self->send(a, hit_atom::value);
      where.set_value(weave::this_thread_name());
      self->quit();
    });
    p.send_all("go\n");
    auto thread = take(fut);
    CAPTURE(thread);
    CHECK(all.wait(patience));
    CHECK(hits == n);
    for (auto& a : actors)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }
}

TEST_CASE("gather review: under always, a handler stuck on the I/O thread "
          "waiting for an actor it woke (behind others it woke) gets it") {
  using count_atom = caf::atom_constant<caf::atom("grcount")>;
  int on_io = 0;
  for (int round = 0; round < max_rounds && on_io == 0; ++round) {
    CAPTURE(round);
    raw_peer p{turns_config(8, "always")};
    auto sys = &p.rt.system();
    std::vector<caf::actor> helpers;
    for (int i = 0; i < 5; ++i)
      helpers.push_back(
        sys->spawn([](caf::event_based_actor*) -> caf::behavior {
          auto n = std::make_shared<int>(0);
          return {[n](int x) { *n += x; }, [n](count_atom) { return *n; }};
        }));
    std::promise<std::pair<std::string, std::string>> got;
    auto fut = got.get_future();
    read_then(p, [&got, sys, helpers](caf::event_based_actor* self,
                                     const std::string&) {
      std::string thread = weave::this_thread_name();
      std::string result;
      for (auto& h : helpers)
        self->send(h, 1);
      {
        caf::scoped_actor s{*sys};
        for (auto& h : helpers)
          s->request(h, std::chrono::seconds{3}, count_atom::value)
            .receive([&](int n) { result += std::to_string(n); },
                     [&](caf::error& err) {
                       result += "error: " + weave::render(err);
                     });
      }
      got.set_value({thread, result});
      self->quit();
    });
    p.send_all("go\n");
    auto out = take(fut);
    CAPTURE(out.first);
    CHECK(out.second == "11111");
    if (out.first == "weave-tcp")
      ++on_io;
    for (auto& h : helpers)
      caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  }
  CHECK(on_io == 1);
}

// ---- Fairness: the other actors get a thread while a producer streams.

namespace {

/// One scheduler thread; a producer that writes `chunk` bytes per call
/// streams to a reader thread; meanwhile the test thread asks another actor
/// 20 times (2 s each): every answer must come, none slower than 500 ms.
void one_thread_fairness(const char* mode, size_t chunk) {
  {
    journal j;
    std::atomic<bool> stop{false};
    weave::runtime rt{turns_config(8, mode, 1)};
    raw_listener l;
    spawn_tcp_connect(rt, "127.0.0.1", l.port,
                      std::make_unique<endless>(&j, &stop, chunk));
    int fd = l.accept_one();
    std::atomic<uint64_t> drained{0};
    std::thread reader([&] {
      std::vector<char> buf(1 << 20);
      for (;;) {
        auto n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0)
          break;
        drained += static_cast<uint64_t>(n);
      }
    });
    REQUIRE(weave::test::eventually([&] { return drained.load() > (16u << 20); }));
    auto echo = echo_int(rt);
    caf::scoped_actor self{rt.system()};
    int answered = 0;
    auto worst = clk::duration::zero();
    for (int i = 0; i < 20; ++i) {
      auto t0 = clk::now();
      self->request(echo, 2s, i).receive(
        [&](int x) {
          if (x == i)
            ++answered;
        },
        [&](caf::error&) {});
      worst = std::max(worst, clk::now() - t0);
    }
    auto before = drained.load();
    stop = true;
    CHECK(j.lost_latch.wait(patience));
    reader.join();
    ::close(fd);
    MESSAGE(std::string{mode} << ": worst "
                 << std::chrono::duration_cast<std::chrono::milliseconds>(worst)
                      .count()
                 << " ms, " << (before >> 20) << " MiB drained, "
                 << answered << " of 20 answered");
    CHECK(answered == 20);
    CHECK(worst < 500ms * weave::test::sanitizer_slowdown);
    caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  }
}

} // namespace

TEST_CASE("gather review: one scheduler thread, never, 64 KiB writes: "
          "another actor answers promptly while a producer streams"
          * doctest::timeout(60)) {
  one_thread_fairness("never", 65536);
}

TEST_CASE("gather review: one scheduler thread, always, 64 KiB writes: "
          "another actor answers promptly while a producer streams"
          * doctest::timeout(60)) {
  one_thread_fairness("always", 65536);
}

TEST_CASE("gather review: one scheduler thread, never, 256-byte writes: "
          "another actor answers promptly while a producer streams"
          * doctest::timeout(60)) {
  one_thread_fairness("never", 256);
}

TEST_CASE("gather review: one scheduler thread, always, 256-byte writes: "
          "another actor answers promptly while a producer streams"
          * doctest::timeout(60)) {
  one_thread_fairness("always", 256);
}

TEST_CASE("gather review: under always, three producers to in-process sinks "
          "do not starve a request/response connection on the I/O thread"
          * doctest::timeout(120)) {
  journal echo_j;
  journal sink_j[3];
  journal prod_j[3];
  std::atomic<uint64_t> sunk{0};
  std::atomic<bool> stop{false};
  int next_sink = 0;
  weave::runtime rt{turns_config(8, "always")};
  caf::scoped_actor self{rt.system()};
  auto sinks = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<counting_sink>(&sink_j[next_sink++], &sunk);
  });
  auto sink_port = port_of(self, sinks);
  for (auto& pj : prod_j)
    spawn_tcp_connect(rt, "127.0.0.1", sink_port,
                      std::make_unique<endless>(&pj, &stop));
  auto echos = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
    return std::make_unique<echo_rec>(&echo_j);
  });
  int fd = dial(port_of(self, echos));
  REQUIRE(weave::test::eventually([&] { return sunk.load() > (32u << 20); }));
  auto worst = clk::duration::zero();
  int ok = 0;
  for (int i = 0; i < 50; ++i) {
    auto msg = "ping" + std::to_string(i);
    auto t0 = clk::now();
    send_all(fd, msg);
    if (read_n(fd, msg.size()) == msg)
      ++ok;
    worst = std::max(worst, clk::now() - t0);
  }
  stop = true;
  for (auto& pj : prod_j)
    CHECK(pj.lost_latch.wait(patience));
  MESSAGE("worst round trip "
          << std::chrono::duration_cast<std::chrono::milliseconds>(worst).count()
          << " ms");
  CHECK(ok == 50);
  CHECK(worst < 500ms * weave::test::sanitizer_slowdown);
  ::close(fd);
}

// ---- Shutdown and many connections.

namespace {

/// Four producers stream to four sinks in one runtime, which is then shut
/// down: each side must be told once and destroyed, within the deadline.
void shutdown_mid_stream(const char* mode, size_t threads) {
  journal prod_j[4];
  journal sink_j[4];
  std::atomic<uint64_t> sunk{0};
  std::atomic<int> next_sink{0};
  clk::duration took{};
  {
    weave::runtime rt{turns_config(8, mode, threads)};
    uint16_t port = 0;
    auto sinks = spawn_tcp_server(rt, "127.0.0.1", 0, [&] {
      return std::make_unique<counting_sink>(&sink_j[next_sink++], &sunk);
    });
    {
      caf::scoped_actor self{rt.system()};
      port = port_of(self, sinks);
    }
    for (auto& pj : prod_j)
      spawn_tcp_connect(rt, "127.0.0.1", port,
                        std::make_unique<endless>(&pj, nullptr));
    // All four accepted, then streaming: the first producer can move 32 MB
    // before the last is accepted (measured: all accepted within 10 ms of
    // this line, at up to 40 MB; counted after 32 MB instead, a plain run
    // of the whole suite found 1 of 4 once).
    REQUIRE(weave::test::eventually([&] { return next_sink.load() == 4; }));
    auto at_accept = sunk.load();
    REQUIRE(weave::test::eventually(
      [&] { return sunk.load() > at_accept + (32u << 20); }));
    auto t0 = clk::now();
    rt.shutdown();
    took = clk::now() - t0;
  }
  MESSAGE("shutdown took "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
          << " ms");
  CHECK(took < 3s);
  for (int i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(prod_j[i].lost == 1);
    CHECK(sink_j[i].lost == 1);
    CHECK(prod_j[i].alive == 0);
    CHECK(sink_j[i].alive == 0);
  }
}

} // namespace

TEST_CASE("gather review: shutdown mid-stream, always, 16 threads"
          * doctest::timeout(60)) {
  shutdown_mid_stream("always", 16);
}

TEST_CASE("gather review: shutdown mid-stream, never, 16 threads"
          * doctest::timeout(60)) {
  shutdown_mid_stream("never", 16);
}

TEST_CASE("gather review: shutdown mid-stream, always, 2 threads"
          * doctest::timeout(60)) {
  shutdown_mid_stream("always", 2);
}

TEST_CASE("gather review: shutdown mid-stream, never, 2 threads"
          * doctest::timeout(60)) {
  shutdown_mid_stream("never", 2);
}

TEST_CASE("gather review: 200 connections (16 threads, always, turns 8 and "
          "1) echo and half-close at once: each told once, destroyed"
          * doctest::timeout(120)) {
  for (size_t turns : {size_t{8}, size_t{1}}) {
    CAPTURE(turns);
    constexpr int n = 200;
    counters c;
    weave::runtime rt{turns_config(turns, "always", 16)};
    caf::scoped_actor self{rt.system()};
    auto server = spawn_tcp_server(
      rt, "127.0.0.1", 0, [&] { return std::make_unique<counted_echo>(&c); },
      tcp_options{}, 1024);
    auto port = port_of(self, server);
    std::vector<int> fds;
    auto big = pattern_text(100000, 1);
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
    CHECK(c.clean == n);
    CHECK(c.early == 0);
    CHECK(weave::test::eventually([&] { return c.alive.load() == 0; }));
  }
}
