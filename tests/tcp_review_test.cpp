// actors/tcp, a hostile review (thirteenth session). The first cases
// failed on the code they were written against (commit 1bb8154), and pass
// since the fixes:
// - pipelined reads at end of stream: a read_some queued behind a read_line
//   that can never end is failed `closed` although its bytes are there
//   (serve_reads in tcp_stream.cpp fails every queued read at EOF);
// - a deadline met or answered long ago keeps a connection open after its
//   last handle is gone (the connect timer, 10 s by default, and the timer
//   of every read that waited: `delayed_send` holds the actor, never
//   cancelled);
// - a connection or listener that failed before the runtime's shutdown
//   (refused connect, tcp_close, any io_error) is no longer registered with
//   the reactor, so the shutdown never stops it: it keeps the reactor's
//   descriptors open, and dropping its handle afterwards crashes the
//   process in CAF's cleanup (run in a child process here).
// The other cases hold; each guards what the older suites do not: awkward
// byte boundaries, deadlines on half-arrived bytes, zero deadlines, idle
// deadlines with one-way traffic, killed actors, resets, half-close twice,
// pipelined writes, descriptor exhaustion, the shutdown mid-transfer, and a
// thousand connections.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <dirent.h>
#include <netinet/in.h>
#include <spawn.h>
#include <vector>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_review_support.hpp"
#include "tests/tcp_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using namespace weave::test::tcp;
using weave::test::patience;
using clk = std::chrono::steady_clock;

namespace {

/// How long a connection whose every handle is gone (and that owes nothing)
/// may take to close: far below the deadlines the cases below leave armed.
constexpr auto close_promptly = std::chrono::seconds{3};


/// A port on loopback that was free a moment ago (a connect to it is
/// refused).
uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0);
  socklen_t len = sizeof(sa);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
  ::close(fd);
  return ntohs(sa.sin_port);
}



/// Sets RLIMIT_NOFILE's soft limit for the scope: restored at its end.
struct fd_limit {
  rlimit old{};
  explicit fd_limit(rlim_t soft) {
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
    rlimit now = old;
    now.rlim_cur = soft;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &now) == 0);
  }
  ~fd_limit() {
    ::setrlimit(RLIMIT_NOFILE, &old);
  }
};

/// The lowest free descriptor number: a soft limit of this makes the next
/// socket()/accept() fail with EMFILE.
int lowest_free_fd() {
  int t = ::dup(0);
  REQUIRE(t >= 0);
  ::close(t);
  return t;
}

/// Holds every descriptor free below the soft limit: one that another
/// thread held for a moment when `lowest_free_fd` looked (the I/O thread
/// reading /proc/self/cgroup as it started: this test failed so, 6 of 20
/// runs once, until the reactor waited for its thread) would otherwise be
/// the next `accept`'s.
struct fd_filler {
  std::vector<int> fds;
  fd_filler() {
    for (int fd = ::dup(0); fd >= 0; fd = ::dup(0))
      fds.push_back(fd);
  }
  ~fd_filler() {
    for (int fd : fds)
      ::close(fd);
  }
};

} // namespace

// ---------------------------------------------------------------------------
// Failing cases (bugs)
// ---------------------------------------------------------------------------

TEST_CASE("a read_some queued behind a read_line that meets end of stream "
          "gets the bytes that arrived") {
  pair_fixture f;
  // Both reads wait (nothing sent yet), in this order.
  auto line = f.self->request(f.server, patience, read_line_atom::value);
  auto some = f.self->request(f.server, patience, read_some_atom::value);
  auto st = ask<tcp_stats>(f.self, f.server, tcp_stats_atom::value);
  REQUIRE(st);
  REQUIRE(st->reads_waited == 1); // both are queued (only the front counts)
  // Three bytes without a newline, then end of stream.
  f.write(f.client, "abc");
  REQUIRE(ask<uint64_t>(f.self, f.client, shutdown_write_atom::value));
  auto l = wait_for<std::string>(line);
  auto s = wait_for<std::string>(some);
  // The line can never end: closed, naming the 3 bytes.
  REQUIRE_FALSE(l.ok);
  CHECK(weave::is(l.err, weave::errc::closed));
  CHECK(text(l.err).find("mid-frame (3 bytes") != std::string::npos);
  // read_some: "what has arrived, 1 to read_chunk bytes" — three bytes did
  // arrive; `closed` is for "a read at end of stream". The same request
  // sent after the line's answer is served "abc", so the answer depends on
  // pipelining alone.
  CHECK_MESSAGE(s.ok, "read_some queued behind the line: " << text(s.err));
  CHECK(s.value == "abc");
  // Whatever happened to them, the 3 bytes are handed out once.
  auto later = ask<std::string>(f.self, f.server, read_some_atom::value);
  CHECK_MESSAGE(!later, "read_some after the line's answer got '"
                          << (later ? *later : std::string{}) << "'");
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("dropping every handle of a connected client closes it at once: "
          "the connect deadline, met long ago, does not hold it open") {
  tcp_options client_opts;
  // The default is 10 s: every client then outlives its handles by up to
  // 10 s (its socket open, the peer sees no end of stream).
  client_opts.connect_timeout = std::chrono::hours{1};
  pair_fixture f{{}, client_opts};
  f.write(f.client, "bye");
  f.client = tcp_connection{}; // the last handle; nothing pending
  auto bye = ask<std::string>(f.self, f.server, read_exact_atom::value,
                              uint64_t{3});
  REQUIRE(bye);
  CHECK(*bye == "bye");
  auto start = clk::now();
  auto end = f.self->request(f.server, close_promptly, read_some_atom::value);
  auto r = wait_for<std::string>(end);
  REQUIRE_FALSE(r.ok);
  CHECK_MESSAGE(weave::is(r.err, weave::errc::closed),
                "the server's read after the client's last handle went: "
                  << text(r.err) << " after "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(
                       clk::now() - start)
                       .count()
                  << " ms");
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("dropping every handle after a read that waited closes the "
          "connection at once: the answered read's deadline does not hold "
          "it open") {
  tcp_options server_opts;
  server_opts.read_timeout = std::chrono::hours{1};
  pair_fixture f{server_opts};
  // A read that waits (so it gets a deadline), then is answered.
  auto pending = f.self->request(f.server, patience, read_some_atom::value);
  auto st = ask<tcp_stats>(f.self, f.server, tcp_stats_atom::value);
  REQUIRE(st);
  REQUIRE(st->reads_waited == 1);
  f.write(f.client, "x");
  auto x = wait_for<std::string>(pending);
  REQUIRE(x.ok);
  CHECK(x.value == "x");
  f.server = tcp_connection{}; // the last handle; no request pending
  auto end = f.self->request(f.client, close_promptly, read_some_atom::value);
  auto r = wait_for<std::string>(end);
  REQUIRE_FALSE(r.ok);
  CHECK_MESSAGE(weave::is(r.err, weave::errc::closed),
                "the client's read after the server's last handle went: "
                  << text(r.err));
  CHECK(f.rt.slow_handlers() == 0);
}

// Run alone in a child process (it crashes the process on the code it was
// written against); the case below it runs it.
TEST_CASE("isolated - failed connection and closed listener held across the "
          "runtime shutdown" * doctest::skip()) {
  auto before = tcp_fds();
  weave::runtime rt{weave::test::io_config()};
  tcp_connection refused; // as a program's locals are: past rt.shutdown()
  tcp_listener closed;
  {
    caf::scoped_actor self{rt.system()};
    refused = spawn_tcp_connect(rt, "127.0.0.1", free_port());
    auto r = ask<std::string>(self, refused, connected_atom::value);
    REQUIRE_FALSE(r);
    CHECK(weave::is(r.error(), weave::errc::io_error)); // refused
    closed = spawn_tcp_listener(rt, "127.0.0.1", 0);
    caf::anon_send(closed, tcp_close_atom::value);
    auto a = ask<tcp_connection>(self, closed, accept_atom::value);
    REQUIRE_FALSE(a);
    CHECK(weave::is(a.error(), weave::errc::closed));
  }
  auto report = rt.shutdown(2s);
  CHECK(report.threads_abandoned == 0);
  // "closes every listener and connection ... and stops the I/O thread":
  // the reactor's epoll and eventfd descriptors go with it.
  CHECK(tcp_fds() == before);
  std::fprintf(stderr, "isolated: dropping the refused connection's handle\n");
  refused = tcp_connection{};
  std::fprintf(stderr, "isolated: dropping the closed listener's handle\n");
  closed = tcp_listener{};
  std::fprintf(stderr, "isolated: both handles dropped\n");
}

TEST_CASE("a refused connection and a closed listener whose handles outlive "
          "the runtime's shutdown: the shutdown releases the reactor, and "
          "dropping the handles afterwards is safe") {
  auto how = run_isolated("isolated - failed connection*");
  CHECK_MESSAGE(how == "exit 0",
                "the isolated case (output above) ended: " << how);
}

// ---------------------------------------------------------------------------
// Guards: cases that hold, for what the other suites do not cover
// ---------------------------------------------------------------------------

TEST_CASE("awkward boundaries: a frame prefix split across sends, empty and "
          "\\r\\n lines, read_exact 0, an empty frame, a line of exactly "
          "max_frame and one byte more") {
  tcp_options opts;
  opts.max_frame = 1024;
  opts.read_chunk = 1024;
  pair_fixture f{opts};
  // The prefix arrives in pieces (1 + 2 + 1 bytes), then the payload.
  auto frame = f.self->request(f.server, patience, read_frame_atom::value);
  f.write(f.client, std::string{"\x00", 1});
  REQUIRE(weave::test::eventually([&] {
    auto st = ask<tcp_stats>(f.self, f.server, tcp_stats_atom::value);
    return st && st->bytes_read == 1;
  }));
  f.write(f.client, std::string{"\x00\x00", 2});
  REQUIRE(weave::test::eventually([&] {
    auto st = ask<tcp_stats>(f.self, f.server, tcp_stats_atom::value);
    return st && st->bytes_read == 3;
  }));
  f.write(f.client, std::string{"\x05", 1} + "hello");
  auto fr = wait_for<std::string>(frame);
  REQUIRE_MESSAGE(fr.ok, text(fr.err));
  CHECK(fr.value == "hello");
  // Mixed kinds from one send: an empty line, a \r\n line, read_exact 0,
  // an empty frame, read_some of the rest.
  f.write(f.client, std::string{"\n" "a\r\n" "\x00\x00\x00\x00" "tail", 12});
  auto empty = ask<std::string>(f.self, f.server, read_line_atom::value);
  auto crlf = ask<std::string>(f.self, f.server, read_line_atom::value);
  auto zero = ask<std::string>(f.self, f.server, read_exact_atom::value,
                               uint64_t{0});
  auto nothing = ask<std::string>(f.self, f.server, read_frame_atom::value);
  auto tail = ask<std::string>(f.self, f.server, read_some_atom::value);
  REQUIRE(empty);
  REQUIRE(crlf);
  REQUIRE(zero);
  REQUIRE(nothing);
  REQUIRE(tail);
  CHECK(*empty == "");
  CHECK(*crlf == "a\r"); // only the "\n" goes
  CHECK(*zero == "");
  CHECK(*nothing == "");
  CHECK(*tail == "tail");
  // A line of exactly max_frame bytes, then one of max_frame + 1.
  f.write(f.client, std::string(opts.max_frame, 'm') + "\n");
  auto exact = ask<std::string>(f.self, f.server, read_line_atom::value);
  REQUIRE_MESSAGE(exact, text(exact.error()));
  CHECK(exact->size() == opts.max_frame);
  f.write(f.client, std::string(opts.max_frame + 1, 'n') + "\n");
  auto over = ask<std::string>(f.self, f.server, read_line_atom::value);
  REQUIRE_FALSE(over);
  CHECK(weave::is(over.error(), weave::errc::io_error));
  CHECK(text(over.error()).find("line of 1025 bytes exceeds max_frame (1024)")
        != std::string::npos);
  auto st = ask<tcp_stats>(f.self, f.server, tcp_stats_atom::value);
  REQUIRE(st);
  CHECK(st->peak_read_buffered <= opts.max_frame + frame_prefix_size);
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("a read deadline firing while half a frame has arrived consumes "
          "nothing: the next read_frame gets the whole frame") {
  tcp_options opts;
  opts.read_timeout = 150ms * weave::test::sanitizer_slowdown;
  pair_fixture f{opts};
  // The half frame first: the read takes it as it arrives (it does not
  // wait for a readiness that a slow run could bring after the deadline).
  f.write(f.client, std::string{"\x00\x00\x00\x06" "abc", 7});
  auto first = f.self->request(f.server, patience, read_frame_atom::value);
  auto r = wait_for<std::string>(first);
  REQUIRE_FALSE(r.ok);
  CHECK(weave::is(r.err, weave::errc::timeout));
  auto st = ask<tcp_stats>(f.self, f.server, tcp_stats_atom::value);
  REQUIRE(st);
  CHECK(st->bytes_read == 7);
  CHECK(st->read_buffered == 7); // kept
  f.write(f.client, "def");
  auto whole = ask<std::string>(f.self, f.server, read_frame_atom::value);
  REQUIRE_MESSAGE(whole, text(whole.error()));
  CHECK(*whole == "abcdef");
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("a zero read deadline fails a read that would wait at once, and "
          "serves one whose bytes are there") {
  tcp_options opts;
  opts.read_timeout = caf::timespan{0};
  pair_fixture f{opts};
  auto none = ask<std::string>(f.self, f.server, read_some_atom::value);
  REQUIRE_FALSE(none);
  CHECK(weave::is(none.error(), weave::errc::timeout));
  f.write(f.client, "ready\n");
  REQUIRE(weave::test::eventually([&] {
    auto r = ask<std::string>(f.self, f.server, read_line_atom::value);
    return r && *r == "ready";
  }));
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("an idle deadline with traffic in one direction only: bytes read "
          "or bytes written each keep the connection open") {
  tcp_options opts;
  // Longer under the sanitizers, whose slower turns could otherwise leave
  // the connection idle that long between two bytes.
  opts.idle_timeout = 300ms * weave::test::sanitizer_slowdown;
  const auto every = opts.idle_timeout / 3;
  pair_fixture f{opts};
  constexpr int bytes = 8; // one every idle/3: 8/3 idle deadlines in all
  // The server only reads (one read_exact that takes every byte as it
  // comes), then only writes while the client reads.
  for (int direction = 0; direction < 2; ++direction) {
    auto from = direction == 0 ? f.client : f.server;
    auto to = direction == 0 ? f.server : f.client;
    auto all = f.self->request(to, patience, read_exact_atom::value,
                               uint64_t{bytes});
    weave::test::latch sent{1};
    weave::test::failures bad;
    auto* sent_p = &sent;
    auto* bad_p = &bad;
    f.rt.system().spawn([=](caf::event_based_actor* a) -> caf::behavior {
      auto left = std::make_shared<int>(bytes);
      a->send(a, 0);
      return {[=](int) {
        a->request(from, caf::infinite, tcp_write_atom::value, std::string{"b"})
          .then(
            [=](uint64_t) {
              if (--*left == 0) {
                sent_p->count_down();
                a->quit();
              } else {
                a->delayed_send(a, every, 0);
              }
            },
            [=](caf::error& e) {
              bad_p->add(text(e));
              sent_p->count_down();
              a->quit();
            });
      }};
    });
    auto got = wait_for<std::string>(all);
    REQUIRE(sent.wait());
    CHECK(bad.messages() == "");
    CHECK_MESSAGE(got.ok, "direction " << direction << ": " << text(got.err));
    CHECK(got.value == std::string(bytes, 'b'));
  }
  // No traffic now: the server closes at its deadline.
  auto end = ask<std::string>(f.self, f.server, read_some_atom::value);
  REQUIRE_FALSE(end);
  CHECK(weave::is(end.error(), weave::errc::timeout));
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("killing a connection (exit message) answers every pending "
          "request: read, pushed-back write, shutdown_write; and closes its "
          "socket; a killed listener answers its accept") {
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  raw_listener peer_side{8, 16 * 1024};
  tcp_options opts;
  opts.write_buffer = 16 * 1024;
  opts.socket_buffer = 16 * 1024;
  auto conn = spawn_tcp_connect(rt, "127.0.0.1", peer_side.port, opts);
  int peer = peer_side.accept_one();
  REQUIRE(ask<std::string>(self, conn, connected_atom::value));
  auto read = self->request(conn, patience, read_some_atom::value);
  auto write = self->request(conn, patience, tcp_write_atom::value,
                             std::string(4 * 1024 * 1024, 'w'));
  auto shut = self->request(conn, patience, shutdown_write_atom::value);
  REQUIRE(weave::test::eventually([&] {
    auto st = ask<tcp_stats>(self, conn, tcp_stats_atom::value);
    return st && st->writes_pushed_back == 1;
  }));
  caf::anon_send_exit(conn, caf::exit_reason::kill);
  auto r = wait_for<std::string>(read);
  auto w = wait_for<uint64_t>(write);
  auto s = wait_for<uint64_t>(shut);
  CHECK_FALSE(r.ok);
  CHECK_FALSE(w.ok);
  CHECK_FALSE(s.ok);
  CHECK(weave::is(r.err, weave::errc::closed));
  CHECK(weave::is(w.err, weave::errc::closed));
  CHECK(weave::is(s.err, weave::errc::closed));
  // The socket is closed: the peer reads what was sent, then a reset (the
  // write was cut partway: a clean end would pass it off as complete).
  char buf[64 * 1024];
  ssize_t n;
  while ((n = ::recv(peer, buf, sizeof(buf), 0)) > 0) {
  }
  auto code = errno;
  CHECK(n < 0);
  CHECK(code == ECONNRESET);
  ::close(peer);
  auto listener = spawn_tcp_listener(rt, "127.0.0.1", 0);
  auto acc = self->request(listener, patience, accept_atom::value);
  REQUIRE(ask<uint16_t>(self, listener, tcp_port_atom::value));
  caf::anon_send_exit(listener, caf::exit_reason::kill);
  auto a = wait_for<tcp_connection>(acc);
  CHECK_FALSE(a.ok);
  CHECK(weave::is(a.err, weave::errc::closed));
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a reset by the peer (SO_LINGER 0) fails a pending read with an "
          "io_error; later writes get the same error, no SIGPIPE") {
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  raw_listener peer_side;
  auto conn = spawn_tcp_connect(rt, "127.0.0.1", peer_side.port);
  int peer = peer_side.accept_one();
  REQUIRE(ask<std::string>(self, conn, connected_atom::value));
  auto read = self->request(conn, patience, read_some_atom::value);
  REQUIRE(ask<tcp_stats>(self, conn, tcp_stats_atom::value)); // read queued
  linger lg{1, 0};
  ::setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  ::close(peer);
  auto r = wait_for<std::string>(read);
  REQUIRE_FALSE(r.ok);
  CHECK(weave::is(r.err, weave::errc::io_error));
  CHECK(text(r.err).find("recv from 127.0.0.1:" + std::to_string(peer_side.port)
                         + ": Connection reset by peer")
        != std::string::npos);
  auto w = ask<uint64_t>(self, conn, tcp_write_atom::value, std::string{"x"});
  REQUIRE_FALSE(w);
  CHECK(text(w.error()) == text(r.err));
  // A write to a peer that closed (FIN, then RST for the data): the first
  // write may be taken by the kernel, a later one fails; the process lives.
  auto conn2 = spawn_tcp_connect(rt, "127.0.0.1", peer_side.port);
  int peer2 = peer_side.accept_one();
  REQUIRE(ask<std::string>(self, conn2, connected_atom::value));
  ::close(peer2);
  caf::error err;
  for (int i = 0; i < 1000 && !err; ++i) {
    auto n = ask<uint64_t>(self, conn2, tcp_write_atom::value,
                           std::string(1024, 'p'));
    if (!n)
      err = n.error();
  }
  CHECK(weave::is(err, weave::errc::io_error));
  CHECK(text(err).find("send to 127.0.0.1:") != std::string::npos);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("shutdown_write twice while writes are queued: both answered with "
          "the same total after every byte; writes after it are closed") {
  tcp_options opts;
  opts.write_buffer = 8 * 1024;
  opts.socket_buffer = 16 * 1024;
  pair_fixture f{opts, opts};
  constexpr size_t size = 1024 * 1024;
  auto w = f.self->request(f.client, patience, tcp_write_atom::value,
                           std::string(size, 'q'));
  auto s1 = f.self->request(f.client, patience, shutdown_write_atom::value);
  auto s2 = f.self->request(f.client, patience, shutdown_write_atom::value);
  auto late = ask<uint64_t>(f.self, f.client, tcp_write_atom::value,
                            std::string{"late"});
  REQUIRE_FALSE(late);
  CHECK(weave::is(late.error(), weave::errc::closed));
  // The server reads everything, then the end of stream.
  uint64_t got = 0;
  for (;;) {
    auto chunk = ask<std::string>(f.self, f.server, read_some_atom::value);
    if (!chunk) {
      CHECK(weave::is(chunk.error(), weave::errc::closed));
      break;
    }
    got += chunk->size();
  }
  CHECK(got == size);
  auto wr = wait_for<uint64_t>(w);
  auto a = wait_for<uint64_t>(s1);
  auto b = wait_for<uint64_t>(s2);
  REQUIRE(wr.ok);
  REQUIRE(a.ok);
  REQUIRE(b.ok);
  CHECK(a.value == size);
  CHECK(b.value == size);
  auto third = ask<uint64_t>(f.self, f.client, shutdown_write_atom::value);
  REQUIRE(third);
  CHECK(*third == size);
  auto st = ask<tcp_stats>(f.self, f.client, tcp_stats_atom::value);
  REQUIRE(st);
  CHECK(st->peak_write_buffered <= opts.write_buffer);
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("pipelined writes from one actor: answered in order, bytes in the "
          "same order, the write buffer's bound kept") {
  tcp_options opts;
  opts.write_buffer = 3000;
  opts.socket_buffer = 16 * 1024;
  pair_fixture f{opts, opts};
  constexpr int writes = 200;
  weave::test::latch done{1};
  weave::test::failures bad;
  auto client = f.client;
  auto* bad_p = &bad;
  auto* done_p = &done;
  f.rt.system().spawn([=](caf::event_based_actor* a, int) -> caf::behavior {
    auto next = std::make_shared<int>(0);
    for (int i = 0; i < writes; ++i) {
      // Sizes 1..1999: some larger than what is left of the buffer.
      std::string data(static_cast<size_t>(1 + (i * 397) % 1999),
                       static_cast<char>('A' + i % 26));
      a->request(client, caf::infinite, tcp_write_atom::value, std::move(data))
        .then(
          [=](uint64_t) {
            bad_p->check(*next == i, "write " + std::to_string(i)
                                       + " answered as number "
                                       + std::to_string(*next));
            if (++*next == writes) {
              done_p->count_down();
              a->quit();
            }
          },
          [=](caf::error& e) {
            bad_p->add(text(e));
            done_p->count_down();
            a->quit();
          });
    }
    return {[client](int) {}};
  }, 0);
  size_t total = 0;
  for (int i = 0; i < writes; ++i)
    total += static_cast<size_t>(1 + (i * 397) % 1999);
  auto all = ask<std::string>(f.self, f.server, read_exact_atom::value,
                              uint64_t{total});
  REQUIRE(done.wait());
  CHECK(bad.messages() == "");
  REQUIRE(all);
  size_t pos = 0;
  bool same = true;
  for (int i = 0; i < writes && same; ++i) {
    auto len = static_cast<size_t>(1 + (i * 397) % 1999);
    same = all->compare(pos, len,
                        std::string(len, static_cast<char>('A' + i % 26)))
           == 0;
    pos += len;
  }
  CHECK(same);
  auto st = ask<tcp_stats>(f.self, f.client, tcp_stats_atom::value);
  REQUIRE(st);
  CHECK(st->peak_write_buffered <= opts.write_buffer);
  CHECK(st->bytes_written == total);
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("out of descriptors (EMFILE): accept fails with an io_error naming "
          "it, spawn_tcp_connect throws one, and the listener serves the "
          "same peer once descriptors are free again") {
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  auto listener = spawn_tcp_listener(rt, "127.0.0.1", 0);
  auto port = ask<uint16_t>(self, listener, tcp_port_atom::value);
  REQUIRE(port);
  // A peer waiting in the backlog (its socket made before the limit).
  int peer = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(*port);
  REQUIRE(::connect(peer, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0);
  std::string accept_error;
  std::string connect_error = "spawned";
  std::exception_ptr thrown;
  {
    fd_limit limit{static_cast<rlim_t>(lowest_free_fd())};
    fd_filler holes;
    auto a = ask<tcp_connection>(self, listener, accept_atom::value);
    if (a)
      accept_error = "accepted";
    else
      accept_error = text(a.error());
    try {
      spawn_tcp_connect(rt, "127.0.0.1", *port);
    } catch (...) {
      // Read once the limit is lifted: UBSan's check of a virtual call
      // tests memory through a pipe, which fails without descriptors.
      thrown = std::current_exception();
    }
  }
  if (thrown) {
    try {
      std::rethrow_exception(thrown);
    } catch (const weave::exception& e) {
      connect_error = e.what();
    } catch (...) {
      connect_error = "another exception";
    }
  }
  auto p = std::to_string(*port);
  CHECK(accept_error
        == "weave::io_error: accept on 127.0.0.1:" + p
             + ": Too many open files");
  CHECK(connect_error
        == "weave::io_error: socket for 127.0.0.1:" + p
             + ": Too many open files");
  auto again = ask<tcp_connection>(self, listener, accept_atom::value);
  REQUIRE_MESSAGE(again, text(again.error()));
  REQUIRE(::send(peer, "hi\n", 3, MSG_NOSIGNAL) == 3);
  auto hi = ask<std::string>(self, *again, read_line_atom::value);
  REQUIRE(hi);
  CHECK(*hi == "hi");
  ::close(peer);
  CHECK(rt.slow_handlers() == 0);
}

// Run alone in a child process: it counts the process's descriptors, and a
// runtime of an earlier case whose I/O thread was abandoned under load
// (counted so in its report) closes its epoll and eventfd descriptors when
// that thread ends, perhaps in the middle of this case.
TEST_CASE("isolated - the runtime's shutdown mid-transfer answers every "
          "pending request with shut_down" * doctest::skip()) {
  auto before = tcp_fds();
  constexpr int requests = 6;
  weave::test::latch answered{requests};
  weave::test::failures bad;
  int peer = -1;
  {
    raw_listener peer_side{8, 16 * 1024};
    weave::runtime rt{weave::test::io_config()};
    // Held past the shutdown, as a program's locals are.
    tcp_connection conn;
    tcp_connection pending_connect;
    std::vector<tcp_connection> filler;
    tcp_listener full;
    tcp_listener quiet;
    {
      caf::scoped_actor self{rt.system()};
      tcp_options opts;
      opts.write_buffer = 16 * 1024;
      opts.socket_buffer = 16 * 1024;
      opts.connect_timeout = std::chrono::hours{1};
      conn = spawn_tcp_connect(rt, "127.0.0.1", peer_side.port, opts);
      peer = peer_side.accept_one();
      REQUIRE(ask<std::string>(self, conn, connected_atom::value));
      // A listener that never accepts, backlog 0, filled: a connect to it
      // stays in progress.
      full = spawn_tcp_listener(rt, "127.0.0.1", 0, {}, 0);
      auto full_port = ask<uint16_t>(self, full, tcp_port_atom::value);
      REQUIRE(full_port);
      for (int i = 0; i < 4; ++i)
        filler.push_back(spawn_tcp_connect(rt, "127.0.0.1", *full_port, opts));
      pending_connect = spawn_tcp_connect(rt, "127.0.0.1", *full_port, opts);
      quiet = spawn_tcp_listener(rt, "127.0.0.1", 0);
      auto* bad_p = &bad;
      auto* answered_p = &answered;
      weave::test::latch sent{1};
      auto* sent_p = &sent;
      rt.system().spawn([=](caf::event_based_actor* a, int) -> caf::behavior {
        auto left = std::make_shared<int>(requests);
        auto one = [=](const std::string& what, const caf::error* e) {
          if (e == nullptr)
            bad_p->add(what + " answered with a value");
          else
            bad_p->check(weave::is(*e, weave::errc::shut_down),
                         what + ": " + text(*e));
          answered_p->count_down();
          if (--*left == 0)
            a->quit();
        };
        auto err = [=](std::string what) {
          return [=](caf::error& e) { one(what, &e); };
        };
        a->request(conn, caf::infinite, read_some_atom::value)
          .then([=](std::string&) { one("read", nullptr); }, err("read"));
        a->request(conn, caf::infinite, tcp_write_atom::value,
                   std::string(4 * 1024 * 1024, 'z'))
          .then([=](uint64_t) { one("write", nullptr); }, err("write"));
        a->request(conn, caf::infinite, shutdown_write_atom::value)
          .then([=](uint64_t) { one("shutdown_write", nullptr); },
                err("shutdown_write"));
        a->request(pending_connect, caf::infinite, connected_atom::value)
          .then([=](std::string&) { one("connected", nullptr); },
                err("connected"));
        a->request(pending_connect, caf::infinite, tcp_write_atom::value,
                   std::string{"x"})
          .then([=](uint64_t) { one("write while connecting", nullptr); },
                err("write while connecting"));
        a->request(quiet, caf::infinite, accept_atom::value)
          .then([=](tcp_connection) { one("accept", nullptr); },
                err("accept"));
        sent_p->count_down();
        return {[](int) {}};
      }, 0);
      REQUIRE(sent.wait());
      REQUIRE(weave::test::eventually([&] {
        auto st = ask<tcp_stats>(self, conn, tcp_stats_atom::value);
        return st && st->writes_pushed_back == 1;
      }));
      auto pc = ask<tcp_stats>(self, pending_connect, tcp_stats_atom::value);
      REQUIRE(pc); // its requests are queued
    }
    auto report = rt.shutdown(2s);
    CHECK(answered.wait());
    CHECK(bad.messages() == "");
    CHECK(report.threads_abandoned == 0);
    CHECK(report.threads_joined >= 1);
    // Every socket and the reactor's own descriptors closed, the handles
    // above still held: only the raw peer and its listener are left.
    CHECK(tcp_fds() == before + 2);
    ::close(peer);
  }
  CHECK(tcp_fds() == before);
}

TEST_CASE("the runtime's shutdown mid-transfer answers every pending request "
          "with shut_down (read, pushed-back write, shutdown_write, a connect "
          "in progress, accept) and leaves no descriptor open") {
  auto how = run_isolated("isolated - the runtime's shutdown mid-transfer*");
  CHECK_MESSAGE(how == "exit 0",
                "the isolated case (output above) ended: " << how);
}


TEST_CASE("a thousand connections on one listener: all accepted, one byte "
          "each way, every socket closed once the handles are dropped") {
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  auto listener = spawn_tcp_listener(rt, "127.0.0.1", 0, {}, 1024);
  auto port = ask<uint16_t>(self, listener, tcp_port_atom::value);
  REQUIRE(port);
  auto sockets = open_fds("socket:"); // the listener's
  constexpr int n = 1000;
  tcp_options opts;
  // No connect deadline: a connect deadline met long ago holds a client
  // open after its handles go (a failing case above).
  opts.connect_timeout = caf::timespan::max();
  std::vector<tcp_connection> clients;
  std::vector<tcp_connection> servers;
  {
    using pending_t = decltype(self->request(listener, patience,
                                             accept_atom::value));
    std::vector<pending_t> accepts;
    for (int i = 0; i < n; ++i)
      accepts.push_back(self->request(listener, patience, accept_atom::value));
    for (int i = 0; i < n; ++i)
      clients.push_back(spawn_tcp_connect(rt, "127.0.0.1", *port, opts));
    for (auto& a : accepts) {
      auto r = wait_for<tcp_connection>(a);
      REQUIRE_MESSAGE(r.ok, text(r.err));
      servers.push_back(r.value);
    }
  }
  CHECK(open_fds("socket:") == sockets + 2 * n);
  for (auto& c : clients)
    REQUIRE(ask<uint64_t>(self, c, tcp_write_atom::value, std::string{"x"}));
  for (auto& s : servers) {
    auto x = ask<std::string>(self, s, read_exact_atom::value, uint64_t{1});
    REQUIRE(x);
    CHECK(*x == "x");
    REQUIRE(ask<uint64_t>(self, s, tcp_write_atom::value, std::string{"y"}));
  }
  for (auto& c : clients) {
    auto y = ask<std::string>(self, c, read_exact_atom::value, uint64_t{1});
    REQUIRE(y);
    CHECK(*y == "y");
  }
  clients.clear();
  servers.clear();
  CHECK(weave::test::eventually(
    [&] { return open_fds("socket:") == sockets; }, close_promptly));
  CHECK(rt.slow_handlers() == 0);
}
