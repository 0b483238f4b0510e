// actors/tcp: `read_into` and `write_all` carry the caller's vector there
// and back. The answers are the very allocation sent (its data pointer),
// `read_into` fills it straight from the socket when nothing is buffered
// (the read buffer's peak does not move), and `write_all` is answered only
// once the kernel took every byte (a peer that does not read holds it, and
// the writes queued after it), its bytes never counted in the write buffer.
#include <doctest/doctest.h>

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_support.hpp"

using namespace weave::actors;
using namespace weave::test::tcp;
using weave::test::patience;

namespace {

uintptr_t address_of(const std::vector<char>& v) {
  return reinterpret_cast<uintptr_t>(v.data());
}

} // namespace

TEST_CASE("read_into gives back the caller's vector, filled from the read "
          "buffer or straight from the socket, in order with other reads") {
  tcp_options opts;
  opts.socket_buffer = 1024 * 1024; // room for all that is sent below
  raw_peer p{opts};
  p.send_all("hello\nworld");
  auto hello = ask<std::string>(p.self, p.conn, read_line_atom::value);
  REQUIRE(hello);
  CHECK(*hello == "hello");
  // "world" waits in the read buffer: copied into the vector.
  std::vector<char> buf(64);
  auto at = address_of(buf);
  auto got = ask<std::vector<char>>(p.self, p.conn, read_into_atom::value,
                                    std::move(buf));
  REQUIRE_MESSAGE(got, text(got.error()));
  CHECK(address_of(*got) == at);
  CHECK(std::string(got->begin(), got->end()) == "world");
  auto peak = p.stats().peak_read_buffered;
  CHECK(peak == 11);
  // Nothing buffered: a pending read_into takes the bytes straight from
  // the socket, at most its size each time, into the same allocation.
  buf = std::move(*got);
  buf.resize(buf.capacity());
  auto pending = p.self->request(p.conn, patience, read_into_atom::value,
                                 std::move(buf));
  constexpr size_t size = 200 * 1024;
  std::string sent(size, '\0');
  for (size_t i = 0; i < size; ++i)
    sent[i] = pattern(3, i);
  p.send_all(sent);
  std::string received;
  bool same_allocation = true;
  pending.receive(
    [&](std::vector<char>& x) {
      same_allocation = same_allocation && address_of(x) == at;
      received.append(x.begin(), x.end());
      buf = std::move(x);
    },
    [&](caf::error& e) { FAIL(text(e)); });
  while (received.size() < size) {
    buf.resize(64);
    auto more = ask<std::vector<char>>(p.self, p.conn, read_into_atom::value,
                                       std::move(buf));
    REQUIRE_MESSAGE(more, text(more.error()));
    REQUIRE(!more->empty());
    REQUIRE(more->size() <= 64);
    same_allocation = same_allocation && address_of(*more) == at;
    received.append(more->begin(), more->end());
    buf = std::move(*more);
  }
  CHECK(same_allocation);
  CHECK(received == sent);
  auto st = p.stats();
  CHECK(st.peak_read_buffered == peak); // never through the read buffer
  CHECK(st.bytes_read == 11 + size);
  // The peer closes: a pending read_into hears it.
  auto last = p.self->request(p.conn, patience, read_into_atom::value,
                              std::vector<char>(16));
  ::shutdown(p.fd, SHUT_WR);
  caf::error closed;
  last.receive([&](std::vector<char>&) { FAIL("read past the end"); },
               [&](caf::error& e) { closed = e; });
  CHECK(weave::is(closed, weave::errc::closed));
  CHECK(p.rt.slow_handlers() == 0);
}

TEST_CASE("read_into with an empty vector is refused, and the connection "
          "goes on") {
  pair_fixture f;
  auto empty = ask<std::vector<char>>(f.self, f.server, read_into_atom::value,
                                      std::vector<char>{});
  REQUIRE(!empty);
  CHECK(weave::is(empty.error(), weave::errc::invalid_argument));
  CHECK(text(empty.error()).find("read_into: an empty buffer")
        != std::string::npos);
  f.write(f.client, "ok");
  auto ok = ask<std::vector<char>>(f.self, f.server, read_into_atom::value,
                                   std::vector<char>(2));
  REQUIRE(ok);
  CHECK(std::string(ok->begin(), ok->end()) == "ok");
}

TEST_CASE("write_all gives back the caller's vector, contents intact, once "
          "the kernel took every byte; the writes after it wait for it") {
  tcp_options opts;
  opts.write_buffer = 64 * 1024;
  opts.socket_buffer = 16 * 1024;
  raw_peer p{opts, 16 * 1024};
  constexpr size_t size = 1024 * 1024;
  std::vector<char> data(size);
  for (size_t i = 0; i < size; ++i)
    data[i] = pattern(4, i);
  auto at = address_of(data);
  caf::scoped_actor writer{p.rt.system()};
  auto pending = writer->request(p.conn, patience, write_all_atom::value,
                                 std::move(data));
  auto tail = writer->request(p.conn, patience, tcp_write_atom::value,
                              std::string{"tail"});
  // The stats request is served after both writes: by then neither is
  // answered (the kernel's buffers hold far less than the vector), and the
  // vector's bytes are not in the write buffer.
  auto st = p.stats();
  CHECK(writer->mailbox().empty());
  CHECK(st.write_buffered == 0);
  // The peer reads everything: first the vector's bytes, then "tail".
  std::string got;
  got.reserve(size + 4);
  char chunk[64 * 1024];
  while (got.size() < size + 4) {
    auto n = ::recv(p.fd, chunk, sizeof(chunk), 0);
    REQUIRE(n > 0);
    got.append(chunk, static_cast<size_t>(n));
  }
  std::vector<char> back;
  pending.receive([&](std::vector<char>& x) { back = std::move(x); },
                  [&](caf::error& e) { FAIL(text(e)); });
  uint64_t tail_answer = 0;
  tail.receive([&](uint64_t n) { tail_answer = n; },
               [&](caf::error& e) { FAIL(text(e)); });
  CHECK(address_of(back) == at);
  REQUIRE(back.size() == size);
  bool intact = true;
  bool in_order = true;
  for (size_t i = 0; i < size; ++i) {
    intact = intact && back[i] == pattern(4, i);
    in_order = in_order && got[i] == pattern(4, i);
  }
  CHECK(intact);
  CHECK(in_order);
  CHECK(got.substr(size) == "tail");
  CHECK(tail_answer == 4);
  st = p.stats();
  CHECK(st.bytes_written == size + 4);
  CHECK(st.peak_write_buffered <= 4); // only "tail" was ever buffered
  CHECK(p.rt.slow_handlers() == 0);
}

TEST_CASE("one vector each way streams 4 MiB between two connections: "
          "write_all and read_into reuse it for every chunk") {
  pair_fixture f;
  constexpr size_t chunk = 64 * 1024;
  constexpr size_t chunks = 64;
  std::vector<char> out(chunk);
  std::vector<char> in(chunk);
  auto out_at = address_of(out);
  auto in_at = address_of(in);
  bool same = true;
  bool in_order = true;
  uint64_t offset = 0;
  uint64_t read = 0;
  for (size_t c = 0; c < chunks; ++c) {
    for (size_t i = 0; i < chunk; ++i)
      out[i] = pattern(5, offset + i);
    offset += chunk;
    auto back = ask<std::vector<char>>(f.self, f.client, write_all_atom::value,
                                       std::move(out));
    REQUIRE_MESSAGE(back, text(back.error()));
    same = same && address_of(*back) == out_at && back->size() == chunk;
    out = std::move(*back);
    while (read < offset) {
      in.resize(chunk);
      auto got = ask<std::vector<char>>(f.self, f.server,
                                        read_into_atom::value, std::move(in));
      REQUIRE_MESSAGE(got, text(got.error()));
      same = same && address_of(*got) == in_at;
      for (auto ch : *got)
        in_order = in_order && ch == pattern(5, read++);
      in = std::move(*got);
    }
  }
  CHECK(same);
  CHECK(in_order);
  CHECK(read == chunk * chunks);
  CHECK(f.rt.slow_handlers() == 0);
}
