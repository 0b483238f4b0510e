// actors/process_actor: the streams — a big stdout while stderr is never
// read, drop_oldest on an unread stream, closing stdout early, a child that
// closes its stdin.
#include <doctest/doctest.h>

#include <csignal>
#include <string>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/process_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using weave::test::drain;
using weave::test::patience;
using weave::test::sh;

namespace {

/// Reads `ch` until it closes; the bytes it carried (a read that is neither
/// an item nor the close fails the test).
size_t count_bytes(weave::channel<std::string>& ch) {
  size_t got = 0;
  for (;;) {
    auto r = ch.get(patience);
    if (r.status == weave::channel_status::closed)
      return got;
    REQUIRE(r);
    got += r.value->size();
  }
}

} // namespace

TEST_CASE("a big stdout completes while stderr is never read") {
  weave::runtime rt{weave::test::io_config()};
  constexpr size_t size = 64 * 1024 * 1024;
  auto p = spawn_process(rt, sh("echo start >&2; head -c "
                                + std::to_string(size)
                                + " /dev/zero; echo end >&2"));
  auto got = count_bytes(*p.out);
  CHECK(got == size);
  CHECK(p.exited.get().success());
  CHECK(drain(*p.err) == "start\nend\n");
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("an unread stderr with drop_oldest never blocks the child") {
  weave::runtime rt{weave::test::io_config()};
  auto opts = sh("head -c 4194304 /dev/zero >&2; head -c 1048576 /dev/zero");
  opts.capacity = 2;
  opts.chunk_size = 4096;
  opts.stderr_overflow = weave::overflow::drop_oldest;
  auto p = spawn_process(rt, opts);
  auto got = count_bytes(*p.out);
  CHECK(got == 1048576);
  CHECK(p.exited.get().success());
  CHECK(p.err->stats().drops > 0);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("closing stdout early stops the reading; the child gets EPIPE") {
  weave::runtime rt{weave::test::io_config()};
  auto p = spawn_process(rt, sh("exec yes"));
  auto first = p.out->get(patience);
  REQUIRE(first);
  p.out->close();
  auto st = p.exited.get(); // `yes` dies of SIGPIPE
  CHECK(st.signal == SIGPIPE);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a child that closes stdin closes the stdin channel with an "
          "io_error") {
  weave::runtime rt{weave::test::io_config()};
  auto p = spawn_process(rt, sh("exec 0<&-; echo closed; sleep 30"));
  auto said = p.out->get(patience);
  REQUIRE(said);
  // Writes fail once the pipe has no reader; the channel then closes.
  std::string chunk(65536, 'x');
  bool closed = weave::test::eventually([&] {
    return p.in->put(chunk, 100ms) == weave::channel_status::closed;
  });
  CHECK(closed);
  CHECK(weave::render(p.in->close_reason()).find("write stdin 'sh'")
        != std::string::npos);
  caf::anon_send_exit(p.actor, caf::exit_reason::kill);
  CHECK(p.exited.get().signal == SIGKILL);
  CHECK(rt.slow_handlers() == 0);
}
