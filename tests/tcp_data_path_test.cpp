// actors/tcp: the data path — writes of moved vectors (plain and framed),
// reads served at once from bytes already in the socket (no wait for the
// I/O thread) in order with reads that wait, and a large moved write held
// back while the peer does not read. The peer is a plain blocking socket,
// so the test knows what is in the kernel (`SIOCOUTQ` is 0 once the
// connection's side has acknowledged, i.e. queued, every byte). Last, the
// bound on what one turn sends, on the connection's byte work alone.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/internal/tcp_stream.hpp"
#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_support.hpp"

using namespace weave::actors;
using namespace weave::test::tcp;
using weave::test::patience;

TEST_CASE("a moved std::vector<char> is written as is and as a frame") {
  pair_fixture f;
  auto n = ask<uint64_t>(f.self, f.client, tcp_write_atom::value,
                         std::vector<char>{'a', 'b', 'c'});
  REQUIRE_MESSAGE(n, text(n.error()));
  CHECK(*n == 3);
  n = ask<uint64_t>(f.self, f.client, write_frame_atom::value,
                    std::vector<char>{'x', 'y', 'z'});
  REQUIRE_MESSAGE(n, text(n.error()));
  CHECK(*n == 3 + frame_prefix_size);
  n = ask<uint64_t>(f.self, f.client, write_frame_atom::value,
                    std::vector<char>{});
  REQUIRE(n);
  CHECK(*n == frame_prefix_size);
  auto abc = ask<std::string>(f.self, f.server, read_exact_atom::value,
                              uint64_t{3});
  auto xyz = ask<std::string>(f.self, f.server, read_frame_atom::value);
  auto empty = ask<std::string>(f.self, f.server, read_frame_atom::value);
  REQUIRE(abc);
  REQUIRE(xyz);
  REQUIRE(empty);
  CHECK(*abc == "abc");
  CHECK(*xyz == "xyz");
  CHECK(empty->empty());
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("bytes already in the socket are read without waiting; order kept "
          "across reads served at once and reads that wait") {
  tcp_options opts;
  opts.socket_buffer = 1024 * 1024; // room for all that is sent below
  raw_peer p{opts};
  p.send_all("one\ntwo\n");
  auto one = ask<std::string>(p.self, p.conn, read_line_atom::value);
  auto two = ask<std::string>(p.self, p.conn, read_line_atom::value);
  REQUIRE(one);
  REQUIRE(two);
  CHECK(*one == "one");
  CHECK(*two == "two");
  CHECK(p.stats().reads_waited == 0);
  // Nothing there: this read waits for readiness...
  auto pending = p.self->request(p.conn, patience, read_line_atom::value);
  CHECK(p.stats().reads_waited == 1); // served after the read: it waited
  // ...and gets the next line; the line after it is served at once.
  p.send_all("three\nfour\n");
  std::string three;
  pending.receive([&](std::string& x) { three = x; },
                  [&](caf::error& e) { FAIL(text(e)); });
  CHECK(three == "three");
  auto four = ask<std::string>(p.self, p.conn, read_line_atom::value);
  REQUIRE(four);
  CHECK(*four == "four");
  // More than one recv's worth (64 KiB) already in the socket.
  std::string big(200 * 1024, '\0');
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = pattern(1, i);
  p.send_all(big);
  auto got = ask<std::string>(p.self, p.conn, read_exact_atom::value,
                              uint64_t{big.size()});
  REQUIRE_MESSAGE(got, text(got.error()));
  CHECK(*got == big);
  auto st = p.stats();
  CHECK(st.reads_waited == 1);
  CHECK(st.bytes_read == 8 + 11 + big.size());
  CHECK(p.rt.slow_handlers() == 0);
}

TEST_CASE("a large moved write is held back while the peer does not read, "
          "and answered once it fits in the write buffer") {
  tcp_options opts;
  opts.write_buffer = 64 * 1024;
  opts.socket_buffer = 16 * 1024;
  raw_peer p{opts, 16 * 1024};
  constexpr size_t size = 4 * 1024 * 1024;
  std::vector<char> data(size);
  for (size_t i = 0; i < size; ++i)
    data[i] = pattern(2, i);
  caf::scoped_actor writer{p.rt.system()};
  auto pending = writer->request(p.conn, patience, tcp_write_atom::value,
                                 std::move(data));
  // Held back: the kernel's buffers are far smaller than the write.
  REQUIRE(weave::test::eventually(
    [&] { return p.stats().writes_pushed_back == 1; }));
  // Not answered: its unsent bytes are not in the write buffer yet.
  CHECK(p.stats().write_buffered == 0);
  // The peer reads everything; the write is answered on the way.
  std::string got;
  got.reserve(size);
  char buf[64 * 1024];
  while (got.size() < size) {
    auto n = ::recv(p.fd, buf, sizeof(buf), 0);
    REQUIRE(n > 0);
    got.append(buf, static_cast<size_t>(n));
  }
  uint64_t answer = 0;
  pending.receive([&](uint64_t n) { answer = n; },
                  [&](caf::error& e) { FAIL(text(e)); });
  CHECK(answer == size);
  bool same = true;
  for (size_t i = 0; i < size && same; ++i)
    same = got[i] == pattern(2, i);
  CHECK(same);
  auto st = p.stats();
  CHECK(st.bytes_written == size);
  CHECK(st.peak_write_buffered <= opts.write_buffer);
  CHECK(st.write_buffered == 0);
  CHECK(p.rt.slow_handlers() == 0);
}

TEST_CASE("one turn of a connection sends at most send_per_turn bytes; the "
          "rest goes in the next turn") {
  namespace in = weave::actors::internal;
  // The connection's side of a stream socket pair whose kernel buffer takes
  // far more than the bound at once (nothing reads the other side).
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                       sv)
          == 0);
  int big_buffer = 8 * static_cast<int>(in::send_per_turn);
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big_buffer, sizeof(big_buffer));
  ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big_buffer, sizeof(big_buffer));
  in::conn_state s;
  s.reactor = std::make_shared<in::tcp_reactor>(); // arming: not registered
  s.fd = sv[0];
  s.peer = "socketpair";
  s.opts.write_buffer = 4 * in::send_per_turn;
  // Twice the bound, in writes small enough that one `sendmsg` (gathering
  // `gather_max` of them) sends exactly the bound.
  constexpr size_t piece = in::send_per_turn / in::gather_max;
  constexpr size_t pieces = 2 * in::gather_max;
  for (size_t i = 0; i < pieces; ++i) {
    in::write_req w;
    w.text.assign(piece, static_cast<char>('a' + i % 26));
    w.reply = piece;
    s.writes.push_back(std::move(w)); // default promises: answers dropped
  }
  in::pump(s); // one turn
  CHECK(s.failure == caf::none);
  CHECK(s.stats.bytes_written == in::send_per_turn);
  CHECK(s.writes.size() == pieces - in::gather_max);
  // The kernel had room for more: the bound, not `EAGAIN`, ended the turn.
  in::pump(s); // the next turn (after `EPOLLOUT`)
  CHECK(s.failure == caf::none);
  CHECK(s.stats.bytes_written == 2 * in::send_per_turn);
  CHECK(s.writes.empty());
  // Every byte arrived, in order.
  std::string got;
  char buf[64 * 1024];
  for (;;) {
    auto n = ::recv(sv[1], buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    got.append(buf, static_cast<size_t>(n));
  }
  REQUIRE(got.size() == pieces * piece);
  bool same = true;
  for (size_t i = 0; i < got.size() && same; ++i)
    same = got[i] == static_cast<char>('a' + (i / piece) % 26);
  CHECK(same);
  ::close(sv[1]); // sv[0] is closed by the state
}

TEST_CASE("read_some takes at most read_chunk bytes; other reads go on from "
          "the buffer and the socket in order") {
  tcp_options opts;
  opts.read_chunk = 5;
  opts.socket_buffer = 1024 * 1024;
  raw_peer p{opts};
  p.send_all("hello world\nab\ncd");
  // At most read_chunk bytes; the rest stays in the read buffer.
  auto hello = ask<std::string>(p.self, p.conn, read_some_atom::value);
  REQUIRE(hello);
  CHECK(*hello == "hello");
  CHECK(p.stats().read_buffered == 12);
  // Lines from the read buffer...
  auto world = ask<std::string>(p.self, p.conn, read_line_atom::value);
  REQUIRE(world);
  CHECK(*world == " world");
  CHECK(p.stats().read_buffered == 5); // "ab\ncd"
  auto ab = ask<std::string>(p.self, p.conn, read_line_atom::value);
  REQUIRE(ab);
  CHECK(*ab == "ab");
  // ...and a read_some served from what is buffered.
  auto cd = ask<std::string>(p.self, p.conn, read_some_atom::value);
  REQUIRE(cd);
  CHECK(*cd == "cd");
  // A read_some that waits for readiness.
  auto pending = p.self->request(p.conn, patience, read_some_atom::value);
  CHECK(p.stats().reads_waited == 1); // served after the read: it waited
  p.send_all("xyz");
  std::string xyz;
  pending.receive([&](std::string& x) { xyz = x; },
                  [&](caf::error& e) { FAIL(text(e)); });
  CHECK(xyz == "xyz");
  auto st = p.stats();
  CHECK(st.bytes_read == 17 + 3);
  CHECK(st.read_buffered == 0);
  CHECK(st.reads_waited == 1);
  CHECK(st.peak_read_buffered <= opts.max_frame + frame_prefix_size);
  CHECK(p.rt.slow_handlers() == 0);
}

TEST_CASE("once the kernel refused more bytes (EAGAIN), no sendmsg is tried "
          "until the next readiness") {
  namespace in = weave::actors::internal;
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                       sv)
          == 0);
  int small = 16 * 1024;
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  in::conn_state s;
  s.reactor = std::make_shared<in::tcp_reactor>(); // arming: not registered
  s.fd = sv[0];
  s.peer = "socketpair";
  constexpr size_t size = 1024 * 1024; // far more than the kernel holds
  in::write_req w;
  w.text.assign(size, 'q');
  w.reply = size;
  s.writes.push_back(std::move(w));
  in::pump(s);
  CHECK(s.failure == caf::none);
  auto first = s.stats.bytes_written;
  REQUIRE(first > 0);
  REQUIRE(first < size);
  CHECK(s.send_blocked);
  auto drain = [&] {
    size_t got = 0;
    char buf[64 * 1024];
    for (;;) {
      auto n = ::recv(sv[1], buf, sizeof(buf), 0);
      if (n <= 0)
        return got;
      got += static_cast<size_t>(n);
    }
  };
  size_t received = drain(); // room again, but no readiness came
  CHECK(received == first);
  in::pump(s); // e.g. a new request in the same state: no sendmsg
  CHECK(s.stats.bytes_written == first);
  // The readiness (as the connection's `tcp_ready` handler does it).
  s.armed = 0;
  s.send_blocked = false;
  in::pump(s);
  CHECK(s.failure == caf::none);
  CHECK(s.stats.bytes_written > first);
  // To the end: every byte arrives.
  while (!s.writes.empty() && !s.failure) {
    received += drain();
    s.armed = 0;
    s.send_blocked = false;
    in::pump(s);
  }
  received += drain();
  CHECK(s.failure == caf::none);
  CHECK(received == size);
  ::close(sv[1]); // sv[0] is closed by the state
}
