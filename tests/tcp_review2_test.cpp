// actors/tcp, a hostile review, round 2 (thirteenth session), of the fixes
// and the new buffer API (read_into / write_all). The first cases fail on
// the code they were written against (commit b5bcdab):
// - a read deadline that fails the front read leaves the reads behind it
//   waiting although their bytes are in the read buffer (on_timer in
//   tcp_connection.cpp removes the read and never pumps): a read_some
//   behind a timed-out read_line times out too, bytes buffered;
// - dropping the last handle (or tcp_close) while answered writes still
//   have unsent bytes in the write buffer discards them and closes with a
//   plain FIN: the peer sees a clean end of stream after a truncated one;
// - a connection or listener whose init meets the shutdown (the reactor
//   refuses `add`) quits in its init, so the requests already in its
//   mailbox are bounced by CAF with request_receiver_down, not answered
//   with shut_down (run in a child process here).
// The other cases hold; each guards what the older suites do not: pipelined
// reads and writes of every kind with read_into / write_all (size 1, smaller
// than buffered, 32 MiB, empty), requests pending at tcp_close, a pending
// write_all holding a dropped connection open, end of stream mid-frame with
// reads queued behind, read deadlines racing the bytes, dropped handles
// with deadlines pending, and spawns racing the shutdown.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <dirent.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
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



std::string str(const std::vector<char>& v) {
  return std::string(v.begin(), v.end());
}

std::vector<char> vec(const std::string& s) {
  return std::vector<char>(s.begin(), s.end());
}

/// Reads from a blocking socket until `n` bytes or the end of stream.
std::string recv_n(int fd, size_t n) {
  timeval tv{10, 0}; // the test's own watchdog
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[64 * 1024];
  while (out.size() < n) {
    auto k = ::recv(fd, buf, std::min(sizeof(buf), n - out.size()), 0);
    if (k <= 0)
      break;
    out.append(buf, static_cast<size_t>(k));
  }
  return out;
}

/// Whether a thread of this process has the name `name` (its comm).
bool thread_named(const std::string& name) {
  bool found = false;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (auto* e = ::readdir(d)) {
      if (e->d_name[0] == '.')
        continue;
      auto path = std::string{"/proc/self/task/"} + e->d_name + "/comm";
      if (FILE* f = std::fopen(path.c_str(), "r")) {
        char buf[64] = {};
        if (std::fgets(buf, sizeof(buf), f) != nullptr
            && std::string{buf} == name + "\n")
          found = true;
        std::fclose(f);
      }
    }
    ::closedir(d);
  }
  return found;
}

} // namespace

// ---------------------------------------------------------------------------
// Failing cases (bugs)
// ---------------------------------------------------------------------------

TEST_CASE("a read_some queued behind a read_line that meets its read "
          "deadline gets the bytes already in the read buffer") {
  tcp_options opts;
  opts.read_timeout = 600ms;
  raw_peer p{opts};
  p.send_all("abc"); // no newline: the line can never end
  auto line = p.self->request(p.conn, patience, read_line_atom::value);
  auto st = p.stats();
  REQUIRE(st.read_buffered == 3); // pulled by the pending line
  // The read_some's deadline must come after the line's (both reads share
  // read_timeout, counted from arrival): it arrives a while later.
  std::this_thread::sleep_for(200ms);
  auto start = clk::now();
  auto some = p.self->request(p.conn, patience, read_some_atom::value);
  auto l = wait_for<std::string>(line);
  REQUIRE_FALSE(l.ok);
  CHECK(weave::is(l.err, weave::errc::timeout));
  auto s = wait_for<std::string>(some);
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
    clk::now() - start);
  // "read_some → what has arrived": three bytes are in the buffer since
  // before it arrived; only the line ahead of it held it back.
  CHECK_MESSAGE(s.ok, "read_some behind the timed-out line, after "
                        << waited.count() << " ms: " << text(s.err));
  CHECK(s.value == "abc");
  CHECK(p.rt.slow_handlers() == 0);
}

TEST_CASE("dropping the last handle while answered writes wait in the write "
          "buffer: the peer gets every byte or a reset, never a clean end of "
          "stream after a truncated stream") {
  tcp_options opts;
  opts.socket_buffer = 16 * 1024;
  raw_peer p{opts, 16 * 1024};
  constexpr size_t size = 200 * 1024; // below write_buffer (256 KiB)
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i)
    data[i] = pattern(9, i);
  // Answered: "bytes taken" (the peer does not read yet, so most of them
  // wait in the write buffer).
  auto n = ask<uint64_t>(p.self, p.conn, tcp_write_atom::value, data);
  REQUIRE_MESSAGE(n, text(n.error()));
  CHECK(*n == size);
  auto st = p.stats();
  CHECK(st.write_buffered > 0);
  p.conn = tcp_connection{}; // the last handle; no request pending
  // The peer reads to the end: every byte then a clean end of stream, or
  // an abort (reset) it can tell from one; never a clean end early.
  timeval tv{10, 0};
  ::setsockopt(p.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string got;
  char buf[64 * 1024];
  ssize_t k;
  while ((k = ::recv(p.fd, buf, sizeof(buf), 0)) > 0)
    got.append(buf, static_cast<size_t>(k));
  int code = k < 0 ? errno : 0;
  CHECK(got == data.substr(0, got.size()));
  CHECK_MESSAGE((code == 0 ? got.size() == size : code == ECONNRESET),
                "the peer got " << got.size() << " of " << size
                                << " bytes, then "
                                << (code == 0 ? std::string{"the end of stream"}
                                              : std::strerror(code)));
}

// Run alone in a child process: a crash in CAF's cleanup kills the process.
TEST_CASE("isolated - inits meeting the shutdown" * doctest::skip()) {
  auto before = tcp_fds();
  raw_listener peer_side{64};
  constexpr int n = 10;
  std::vector<tcp_connection> conns;
  std::vector<tcp_listener> listeners;
  std::vector<std::string> answers;
  {
    auto cfg = weave::test::io_config();
    cfg.set("scheduler.max-threads", size_t{1});
    weave::runtime rt{std::move(cfg)};
    std::thread stopper;
    {
      caf::scoped_actor self{rt.system()};
      auto warm = spawn_tcp_listener(rt, "127.0.0.1", 0); // the reactor runs
      REQUIRE(ask<uint16_t>(self, warm, tcp_port_atom::value));
      // The only scheduler worker is held: the actors spawned now run
      // their init only once it is let go, after the reactor stopped.
      weave::test::latch held{1};
      weave::test::latch release{1};
      rt.system().spawn([&](caf::event_based_actor* a) -> caf::behavior {
        a->send(a, 0);
        return {[&, a](int) {
          held.count_down();
          release.wait(std::chrono::seconds{30});
          a->quit();
        }};
      });
      REQUIRE(held.wait());
      using conn_req = decltype(self->request(conns.front(), patience,
                                              connected_atom::value));
      using acc_req = decltype(self->request(listeners.front(), patience,
                                             accept_atom::value));
      std::vector<conn_req> cr;
      std::vector<acc_req> ar;
      for (int i = 0; i < n; ++i) {
        conns.push_back(spawn_tcp_connect(rt, "127.0.0.1", peer_side.port));
        cr.push_back(self->request(conns.back(), patience,
                                   connected_atom::value));
        listeners.push_back(spawn_tcp_listener(rt, "127.0.0.1", 0));
        ar.push_back(self->request(listeners.back(), patience,
                                   accept_atom::value));
      }
      REQUIRE(tcp_fds() >= before + 1 + 2 * n);
      stopper = std::thread{[&] { rt.shutdown(5s); }};
      REQUIRE(weave::test::eventually([] { return !thread_named("weave-tcp"); }));
      release.count_down();
      for (auto& x : cr)
        x.receive([&](std::string& s) { answers.push_back("ok " + s); },
                  [&](caf::error& e) { answers.push_back(text(e)); });
      for (auto& x : ar)
        x.receive([&](tcp_connection&) { answers.push_back("accepted"); },
                  [&](caf::error& e) { answers.push_back(text(e)); });
    }
    weave::release_this_thread(); // another thread shuts the runtime down
    stopper.join();
  }
  REQUIRE(answers.size() == 2 * n);
  // "answers their pending requests with shut_down": these were sent
  // before the shutdown began, to connections and listeners that spawned.
  size_t shut_down = 0;
  std::string other;
  for (auto& a : answers) {
    if (a.find("weave::shut_down") == 0)
      ++shut_down;
    else if (other.empty())
      other = a;
  }
  CHECK_MESSAGE(shut_down == answers.size(),
                shut_down << " of " << answers.size()
                          << " answered shut_down; another: " << other);
  // Only the raw listener is left.
  CHECK(tcp_fds() == before + 1);
  conns.clear();
  listeners.clear();
  std::fprintf(stderr, "isolated: handles dropped\n");
}

TEST_CASE("connections and listeners whose init meets the runtime's shutdown "
          "(the scheduler was busy) answer the requests sent before it with "
          "shut_down; their sockets closed, their handles safe to drop "
          "afterwards") {
  auto how = run_isolated("isolated - inits meeting the shutdown");
  CHECK_MESSAGE(how == "exit 0",
                "the isolated case (output above) ended: " << how);
}

// ---------------------------------------------------------------------------
// Guards
// ---------------------------------------------------------------------------

TEST_CASE("pipelined reads of every kind over one burst: read_into of size 1 "
          "twice, smaller than what is buffered, and a huge one take their "
          "bytes in order") {
  raw_peer p;
  std::string burst = std::string{"line1\n"} + std::string{"\x00\x00\x00\x03", 4}
                      + "frm" + "XYZW" + "0123456789" + "rest";
  p.send_all(burst);
  auto line = p.self->request(p.conn, patience, read_line_atom::value);
  auto frame = p.self->request(p.conn, patience, read_frame_atom::value);
  auto x = p.self->request(p.conn, patience, read_into_atom::value,
                           std::vector<char>(1));
  auto y = p.self->request(p.conn, patience, read_into_atom::value,
                           std::vector<char>(1));
  auto zw = p.self->request(p.conn, patience, read_exact_atom::value,
                            uint64_t{2});
  auto small = p.self->request(p.conn, patience, read_into_atom::value,
                               std::vector<char>(4)); // 14 buffered
  auto some = p.self->request(p.conn, patience, read_some_atom::value);
  // Nothing buffered now: a huge read_into waits and takes what comes.
  auto huge = p.self->request(p.conn, patience, read_into_atom::value,
                              std::vector<char>(32 * 1024 * 1024, 'h'));
  auto l = wait_for<std::string>(line);
  auto f = wait_for<std::string>(frame);
  auto a = wait_for<std::vector<char>>(x);
  auto b = wait_for<std::vector<char>>(y);
  auto e = wait_for<std::string>(zw);
  auto sm = wait_for<std::vector<char>>(small);
  auto so = wait_for<std::string>(some);
  CHECK(l.value == "line1");
  CHECK(f.value == "frm");
  CHECK(str(a.value) == "X");
  CHECK(str(b.value) == "Y");
  CHECK(e.value == "ZW");
  CHECK(str(sm.value) == "0123");
  CHECK(so.value == "456789rest");
  p.send_all("late");
  auto h = wait_for<std::vector<char>>(huge);
  REQUIRE_MESSAGE(h.ok, text(h.err));
  CHECK(str(h.value) == "late");
  auto st = p.stats();
  CHECK(st.bytes_read == burst.size() + 4);
  CHECK(st.read_buffered == 0);
  CHECK(p.rt.slow_handlers() == 0);
}

TEST_CASE("pipelined writes of every kind (tcp_write, write_frame, write_all "
          "empty and large) from one actor: answered in order, bytes in "
          "order, shutdown_write counts them all") {
  tcp_options opts;
  opts.write_buffer = 4 * 1024;
  opts.socket_buffer = 16 * 1024;
  raw_peer p{opts, 16 * 1024};
  constexpr size_t big = 512 * 1024;
  std::vector<char> large(big);
  for (size_t i = 0; i < big; ++i)
    large[i] = pattern(6, i);
  std::string expected = std::string{"a"} + "b" + std::string{"\x00\x00\x00\x01", 4}
                         + "c" + "d" + std::string(large.begin(), large.end())
                         + std::string(3000, 'e') + "f";
  constexpr int answers = 9;
  weave::test::latch done{1};
  weave::test::failures bad;
  auto conn = p.conn;
  auto* bad_p = &bad;
  auto* done_p = &done;
  auto total = std::make_shared<uint64_t>(0);
  p.rt.system().spawn([=](caf::event_based_actor* a, int) -> caf::behavior {
    auto next = std::make_shared<int>(0);
    auto in_order = [=](int i) {
      bad_p->check(*next == i, "answer " + std::to_string(i) + " came as "
                                 + std::to_string(*next));
      if (++*next == answers) {
        done_p->count_down();
        a->quit();
      }
    };
    auto err = [=](int i) {
      return [=](caf::error& e) {
        bad_p->add("request " + std::to_string(i) + ": " + text(e));
        in_order(i);
      };
    };
    auto count = [=](int i) { return [=](uint64_t) { in_order(i); }; };
    auto back = [=](int i, size_t size) {
      return [=](std::vector<char>& v) {
        bad_p->check(v.size() == size, "write_all " + std::to_string(i)
                                         + " gave back "
                                         + std::to_string(v.size()));
        in_order(i);
      };
    };
    a->request(conn, caf::infinite, tcp_write_atom::value, std::string{"a"})
      .then(count(0), err(0));
    a->request(conn, caf::infinite, write_all_atom::value, vec("b"))
      .then(back(1, 1), err(1));
    a->request(conn, caf::infinite, write_frame_atom::value, std::string{"c"})
      .then(count(2), err(2));
    a->request(conn, caf::infinite, write_all_atom::value, std::vector<char>{})
      .then(back(3, 0), err(3));
    a->request(conn, caf::infinite, tcp_write_atom::value, vec("d"))
      .then(count(4), err(4));
    a->request(conn, caf::infinite, write_all_atom::value, large)
      .then(back(5, big), err(5));
    a->request(conn, caf::infinite, tcp_write_atom::value,
               std::string(3000, 'e'))
      .then(count(6), err(6));
    a->request(conn, caf::infinite, write_all_atom::value, vec("f"))
      .then(back(7, 1), err(7));
    a->request(conn, caf::infinite, shutdown_write_atom::value)
      .then(
        [=](uint64_t n) {
          *total = n;
          in_order(8);
        },
        err(8));
    return {[](int) {}};
  }, 0);
  auto got = recv_n(p.fd, expected.size() + 1);
  REQUIRE(done.wait());
  CHECK(bad.messages() == "");
  CHECK(got.size() == expected.size());
  CHECK(got == expected);
  CHECK(*total == expected.size());
  auto st = p.stats();
  CHECK(st.peak_write_buffered <= opts.write_buffer);
  CHECK(p.rt.slow_handlers() == 0);
}

TEST_CASE("tcp_close while a write_all, the write behind it, a read_into and "
          "a shutdown_write are pending: each answered once with closed") {
  tcp_options opts;
  opts.write_buffer = 16 * 1024;
  opts.socket_buffer = 16 * 1024;
  raw_peer p{opts, 16 * 1024};
  auto wa = p.self->request(p.conn, patience, write_all_atom::value,
                            std::vector<char>(4 * 1024 * 1024, 'w'));
  auto w = p.self->request(p.conn, patience, tcp_write_atom::value,
                           std::string{"behind"});
  auto r = p.self->request(p.conn, patience, read_into_atom::value,
                           std::vector<char>(16));
  auto s = p.self->request(p.conn, patience, shutdown_write_atom::value);
  auto st = p.stats();
  CHECK(st.write_buffered == 0);
  caf::anon_send(p.conn, tcp_close_atom::value);
  auto a = wait_for<std::vector<char>>(wa);
  auto b = wait_for<uint64_t>(w);
  auto c = wait_for<std::vector<char>>(r);
  auto d = wait_for<uint64_t>(s);
  CHECK_FALSE(a.ok);
  CHECK_FALSE(b.ok);
  CHECK_FALSE(c.ok);
  CHECK_FALSE(d.ok);
  CHECK(weave::is(a.err, weave::errc::closed));
  CHECK(weave::is(b.err, weave::errc::closed));
  CHECK(weave::is(c.err, weave::errc::closed));
  CHECK(weave::is(d.err, weave::errc::closed));
  // Later requests get the same error; no second answer is left over.
  auto later = ask<std::vector<char>>(p.self, p.conn, write_all_atom::value,
                                      vec("x"));
  REQUIRE_FALSE(later);
  CHECK(text(later.error()) == text(a.err));
  CHECK(p.self->mailbox().empty());
  CHECK(p.rt.slow_handlers() == 0);
}

TEST_CASE("a pending write_all keeps a connection whose handles are gone "
          "alive until the kernel took every byte; then it closes") {
  tcp_options opts;
  opts.socket_buffer = 16 * 1024;
  raw_peer p{opts, 16 * 1024};
  constexpr size_t size = 2 * 1024 * 1024;
  std::vector<char> data(size);
  for (size_t i = 0; i < size; ++i)
    data[i] = pattern(7, i);
  auto pending = p.self->request(p.conn, patience, write_all_atom::value,
                                 data);
  REQUIRE(p.stats().bytes_written < size); // held: the peer does not read
  p.conn = tcp_connection{};
  auto got = recv_n(p.fd, size);
  CHECK(got.size() == size);
  CHECK(got == std::string(data.begin(), data.end()));
  // (The answer carries its sender: the connection ends once it is taken.)
  auto back = wait_for<std::vector<char>>(pending);
  REQUIRE_MESSAGE(back.ok, text(back.err));
  CHECK(back.value == data);
  CHECK(recv_n(p.fd, 1) == ""); // the end of stream, not the 10 s timeout
}

TEST_CASE("the end of stream mid-frame with reads queued behind: only the "
          "frame fails, the others take the bytes, read_exact 0 is empty, "
          "then closed") {
  raw_peer p;
  p.send_all(std::string{"\x00\x00\x00\x08", 4} + "abcd");
  auto frame = p.self->request(p.conn, patience, read_frame_atom::value);
  auto three = p.self->request(p.conn, patience, read_exact_atom::value,
                               uint64_t{3});
  auto into = p.self->request(p.conn, patience, read_into_atom::value,
                              std::vector<char>(2));
  auto some = p.self->request(p.conn, patience, read_some_atom::value);
  auto zero = p.self->request(p.conn, patience, read_exact_atom::value,
                              uint64_t{0});
  auto line = p.self->request(p.conn, patience, read_line_atom::value);
  auto into2 = p.self->request(p.conn, patience, read_into_atom::value,
                               std::vector<char>(2));
  REQUIRE(p.stats().read_buffered == 8);
  ::shutdown(p.fd, SHUT_WR);
  auto f = wait_for<std::string>(frame);
  auto t = wait_for<std::string>(three);
  auto i = wait_for<std::vector<char>>(into);
  auto s = wait_for<std::string>(some);
  auto z = wait_for<std::string>(zero);
  auto l = wait_for<std::string>(line);
  auto i2 = wait_for<std::vector<char>>(into2);
  REQUIRE_FALSE(f.ok);
  CHECK(weave::is(f.err, weave::errc::closed));
  CHECK(text(f.err).find("mid-frame (8 bytes") != std::string::npos);
  CHECK(t.value == std::string{"\x00\x00\x00", 3});
  CHECK(str(i.value) == std::string{"\x08" "a", 2});
  CHECK(s.value == "bcd");
  CHECK(z.ok);
  CHECK(z.value == "");
  REQUIRE_FALSE(l.ok);
  CHECK(weave::is(l.err, weave::errc::closed));
  CHECK(text(l.err).find("mid-frame") == std::string::npos);
  REQUIRE_FALSE(i2.ok);
  CHECK(weave::is(i2.err, weave::errc::closed));
  // Writes still go (half-close): the peer reads them.
  REQUIRE(ask<uint64_t>(p.self, p.conn, tcp_write_atom::value,
                        std::string{"ok"}));
  CHECK(recv_n(p.fd, 2) == "ok");
  CHECK(p.rt.slow_handlers() == 0);
}

TEST_CASE("read deadlines racing the bytes: every read answered once, with "
          "bytes or timeout, and no byte lost or repeated") {
  tcp_options opts;
  opts.read_timeout = 1ms;
  pair_fixture f{opts};
  constexpr int bytes = 300;
  weave::test::latch sent{1};
  weave::test::failures bad;
  auto client = f.client;
  auto* bad_p = &bad;
  auto* sent_p = &sent;
  f.rt.system().spawn([=](caf::event_based_actor* a) -> caf::behavior {
    auto i = std::make_shared<int>(0);
    a->send(a, 0);
    return {[=](int) {
      char c = static_cast<char>('0' + *i % 64);
      a->request(client, caf::infinite, tcp_write_atom::value,
                 std::string(1, c))
        .then(
          [=](uint64_t) {
            if (++*i == bytes) {
              sent_p->count_down();
              a->quit();
            } else if (*i % 3 == 0) {
              a->delayed_send(a, 1ms, 0);
            } else {
              a->send(a, 0);
            }
          },
          [=](caf::error& e) {
            bad_p->add(text(e));
            sent_p->count_down();
            a->quit();
          });
    }};
  });
  std::string got;
  int timeouts = 0;
  while (got.size() < static_cast<size_t>(bytes)) {
    auto r = ask<std::string>(f.self, f.server, read_some_atom::value);
    if (r) {
      got += *r;
      continue;
    }
    REQUIRE_MESSAGE(weave::is(r.error(), weave::errc::timeout), text(r.error()));
    ++timeouts;
  }
  REQUIRE(sent.wait());
  CHECK(bad.messages() == "");
  std::string expected;
  for (int i = 0; i < bytes; ++i)
    expected += static_cast<char>('0' + i % 64);
  CHECK(got == expected);
  MESSAGE(timeouts << " reads timed out");
  CHECK(f.self->mailbox().empty()); // no second answer to any read
}

TEST_CASE("dropping the handles of a connection with a read pending under a "
          "finite read deadline: the read is answered at its deadline, then "
          "the connection closes") {
  tcp_options opts;
  opts.read_timeout = 300ms;
  opts.idle_timeout = std::chrono::hours{1};
  pair_fixture f{opts};
  auto pending = f.self->request(f.server, patience, read_some_atom::value);
  REQUIRE(ask<tcp_stats>(f.self, f.server, tcp_stats_atom::value));
  f.server = tcp_connection{};
  auto r = wait_for<std::string>(pending);
  REQUIRE_FALSE(r.ok);
  CHECK(weave::is(r.err, weave::errc::timeout));
  auto end = f.self->request(f.client, 3s, read_some_atom::value);
  auto e = wait_for<std::string>(end);
  REQUIRE_FALSE(e.ok);
  CHECK_MESSAGE(weave::is(e.err, weave::errc::closed), text(e.err));
}

TEST_CASE("dropping the handle of a connection whose connect is in progress "
          "closes its socket at once (the connect deadline holds it weakly)") {
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  tcp_options opts;
  opts.connect_timeout = std::chrono::hours{1};
  // A listener that never accepts, backlog 0, filled: a connect to it
  // stays in progress.
  auto full = spawn_tcp_listener(rt, "127.0.0.1", 0, {}, 0);
  auto port = ask<uint16_t>(self, full, tcp_port_atom::value);
  REQUIRE(port);
  std::vector<tcp_connection> filler;
  for (int i = 0; i < 4; ++i)
    filler.push_back(spawn_tcp_connect(rt, "127.0.0.1", *port, opts));
  REQUIRE(ask<tcp_stats>(self, filler.back(), tcp_stats_atom::value));
  auto sockets = open_fds("socket:");
  auto pending = spawn_tcp_connect(rt, "127.0.0.1", *port, opts);
  // Initialized, connect armed; no request of it left pending (a
  // `connected` request would keep it alive until the connect ends).
  REQUIRE(ask<tcp_stats>(self, pending, tcp_stats_atom::value));
  CHECK(open_fds("socket:") == sockets + 1);
  pending = tcp_connection{};
  CHECK(weave::test::eventually(
    [&] { return open_fds("socket:") == sockets; }, 3s));
}

// Run alone in a child process: a crash in CAF's cleanup kills the process.
TEST_CASE("isolated - spawns meeting the shutdown" * doctest::skip()) {
  auto before = tcp_fds();
  raw_listener peer_side{1024};
  std::vector<tcp_connection> conns;
  std::vector<tcp_listener> listeners;
  size_t answered = 0;
  size_t refused = 0;
  std::string odd;
  {
    weave::runtime rt{weave::test::io_config()};
    std::thread stopper;
    {
      caf::scoped_actor self{rt.system()};
      tcp_options opts;
      opts.connect_timeout = 50ms;
      opts.read_timeout = 50ms;
      opts.idle_timeout = 80ms;
      using conn_req = decltype(self->request(conns.front(), patience,
                                              connected_atom::value));
      using read_req = decltype(self->request(conns.front(), patience,
                                              read_some_atom::value));
      using acc_req = decltype(self->request(listeners.front(), patience,
                                             accept_atom::value));
      std::vector<conn_req> cr;
      std::vector<read_req> rr;
      std::vector<acc_req> ar;
      for (int i = 0; i < 150; ++i) {
        conns.push_back(spawn_tcp_connect(rt, "127.0.0.1", peer_side.port,
                                          opts));
        cr.push_back(self->request(conns.back(), patience,
                                   connected_atom::value));
        rr.push_back(self->request(conns.back(), patience,
                                   read_some_atom::value));
        listeners.push_back(spawn_tcp_listener(rt, "127.0.0.1", 0, opts));
        ar.push_back(self->request(listeners.back(), patience,
                                   accept_atom::value));
      }
      stopper = std::thread{[&] { rt.shutdown(5s); }};
      auto note = [&](const caf::error& e) {
        ++answered;
        // request_receiver_down: one whose init met the shutdown (which
        // answer it should be: the failing case above).
        if (!weave::is(e, weave::errc::shut_down)
            && !weave::is(e, weave::errc::timeout)
            && e != caf::sec::request_receiver_down && odd.empty())
          odd = text(e);
      };
      for (auto& x : cr)
        x.receive([&](std::string&) { ++answered; }, note);
      for (auto& x : rr)
        x.receive([&](std::string&) { ++answered; }, note);
      for (auto& x : ar)
        x.receive([&](tcp_connection&) { ++answered; }, note);
      // Spawning once the shutdown began throws shut_down.
      try {
        spawn_tcp_connect(rt, "127.0.0.1", peer_side.port);
      } catch (const weave::exception& e) {
        if (weave::is(e.error(), weave::errc::shut_down))
          ++refused;
      }
    }
    weave::release_this_thread(); // another thread shuts the runtime down
    stopper.join();
  }
  std::fprintf(stderr, "isolated: answered %zu of 450, refused %zu; odd: %s\n",
               answered, refused, odd.c_str());
  CHECK(answered == 450);
  CHECK(refused == 1);
  CHECK(odd == "");
  // Only the raw listener is left (its backlog is not ours).
  CHECK(tcp_fds() == before + 1);
  conns.clear();
  listeners.clear();
  std::fprintf(stderr, "isolated: handles dropped\n");
}

TEST_CASE("connections and listeners spawned just before the runtime's "
          "shutdown (some meet it in their init): every request answered, no "
          "descriptor left, handles dropped after the runtime is gone") {
  auto how = run_isolated("isolated - spawns meeting the shutdown");
  CHECK_MESSAGE(how == "exit 0",
                "the isolated case (output above) ended: " << how);
}
