// actors/tcp: framing (lines split across reads, frames, exactly-N, over
// max_frame, peer closing mid-frame) and the read and idle deadlines.
#include <doctest/doctest.h>

#include <chrono>

#include "runtime/weave.hpp"
#include "tests/tcp_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using namespace weave::test::tcp;
using weave::test::patience;
using clk = std::chrono::steady_clock;

TEST_CASE("a line split across reads comes back whole; lines in order") {
  pair_fixture f;
  auto first = f.self->request(f.server, patience, read_line_atom::value);
  f.write(f.client, "hel");
  // The server has taken the first part before the rest is sent.
  REQUIRE(weave::test::eventually([&] {
    auto st = ask<tcp_stats>(f.self, f.server, tcp_stats_atom::value);
    return st && st->bytes_read == 3;
  }));
  f.write(f.client, "lo\nwor");
  f.write(f.client, "ld\n");
  std::string line;
  first.receive([&](std::string& x) { line = x; },
                [&](caf::error& e) { FAIL(text(e)); });
  CHECK(line == "hello");
  auto second = ask<std::string>(f.self, f.server, read_line_atom::value);
  REQUIRE(second);
  CHECK(*second == "world");
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("frames round-trip (empty and max size); exactly-N reads") {
  tcp_options opts;
  opts.max_frame = 64 * 1024;
  opts.read_chunk = 1024;
  pair_fixture f{opts, opts};
  auto big = std::string(opts.max_frame, 'x');
  for (auto& payload : {std::string{}, std::string{"abc"}, big}) {
    auto n = ask<uint64_t>(f.self, f.client, write_frame_atom::value, payload);
    REQUIRE(n);
    CHECK(*n == payload.size() + frame_prefix_size);
    auto got = ask<std::string>(f.self, f.server, read_frame_atom::value);
    REQUIRE_MESSAGE(got, text(got.error()));
    CHECK(*got == payload);
  }
  f.write(f.client, "abcdefghij");
  auto four = ask<std::string>(f.self, f.server, read_exact_atom::value,
                               uint64_t{4});
  auto six = ask<std::string>(f.self, f.server, read_exact_atom::value,
                              uint64_t{6});
  REQUIRE(four);
  REQUIRE(six);
  CHECK(*four == "abcd");
  CHECK(*six == "efghij");
  auto too_big = ask<std::string>(f.self, f.server, read_exact_atom::value,
                                  uint64_t{opts.max_frame + 1});
  REQUIRE_FALSE(too_big);
  CHECK(text(too_big.error())
        == "weave::invalid_argument: read_exact: 65537 bytes exceeds "
           "max_frame (65536)");
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("a frame over max_frame is an io_error and closes the connection") {
  tcp_options opts;
  opts.max_frame = 1024;
  opts.read_chunk = 1024;
  pair_fixture f{opts};
  // A prefix announcing 2000 bytes.
  f.write(f.client, std::string{"\x00\x00\x07\xd0", 4} + "data");
  auto r = ask<std::string>(f.self, f.server, read_frame_atom::value);
  REQUIRE_FALSE(r);
  CHECK(text(r.error()).find("weave::io_error: read_frame from 127.0.0.1:")
        == 0);
  CHECK(text(r.error()).find(": frame of 2000 bytes exceeds max_frame (1024)")
        != std::string::npos);
  auto later = ask<std::string>(f.self, f.server, read_some_atom::value);
  REQUIRE_FALSE(later);
  CHECK(text(later.error()) == text(r.error()));
  // So is a line longer than max_frame.
  pair_fixture g{opts};
  g.write(g.client, std::string(1500, 'y'));
  auto line = ask<std::string>(g.self, g.server, read_line_atom::value);
  REQUIRE_FALSE(line);
  CHECK(text(line.error()).find("exceeds max_frame (1024)")
        != std::string::npos);
  CHECK(f.rt.slow_handlers() == 0);
  CHECK(g.rt.slow_handlers() == 0);
}

TEST_CASE("the peer closing mid-frame is closed, naming the partial frame") {
  pair_fixture f;
  f.write(f.client, std::string{"\x00\x00\x00\x64", 4} + "0123456789");
  caf::anon_send(f.client, tcp_close_atom::value);
  auto r = ask<std::string>(f.self, f.server, read_frame_atom::value);
  REQUIRE_FALSE(r);
  CHECK(weave::is(r.error(), weave::errc::closed));
  CHECK(text(r.error()).find(": the peer closed the connection mid-frame (14 "
                             "bytes of an unfinished frame)")
        != std::string::npos);
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("a read deadline fails the read but keeps the stream usable") {
  tcp_options opts;
  opts.read_timeout = 200ms;
  pair_fixture f{opts};
  auto start = clk::now();
  auto r = ask<std::string>(f.self, f.server, read_line_atom::value);
  auto took = clk::now() - start;
  REQUIRE_FALSE(r);
  CHECK(weave::is(r.error(), weave::errc::timeout));
  CHECK(text(r.error()).find(": no data within 200ms") != std::string::npos);
  CHECK(took >= 200ms);
  CHECK(took < 200ms + 5s);
  f.write(f.client, "after\n");
  auto line = ask<std::string>(f.self, f.server, read_line_atom::value);
  REQUIRE(line);
  CHECK(*line == "after");
  CHECK(f.rt.slow_handlers() == 0);
}

TEST_CASE("an idle deadline closes a connection with no traffic") {
  tcp_options opts;
  opts.idle_timeout = 200ms;
  // The idle clock starts when the connection does, after `start`.
  auto start = clk::now();
  pair_fixture f{opts};
  auto r = ask<std::string>(f.self, f.server, read_some_atom::value);
  auto took = clk::now() - start;
  REQUIRE_FALSE(r);
  CHECK(weave::is(r.error(), weave::errc::timeout));
  CHECK(text(r.error()).find(": idle (no byte read or written) for 200ms")
        != std::string::npos);
  CHECK(took >= 200ms);
  // The client sees the close.
  auto c = ask<std::string>(f.self, f.client, read_some_atom::value);
  REQUIRE_FALSE(c);
  CHECK(weave::is(c.error(), weave::errc::closed));
  CHECK(f.rt.slow_handlers() == 0);
}

