// actors/file_actor: typed file I/O through the blocking pool; errors carry
// the path and the errno text: bad input gets a clear error.
#include <doctest/doctest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <unistd.h>

#include "actors/file_actor.hpp"
#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;

namespace {

/// A fresh directory under the test's temp dir.
std::string temp_dir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string{base ? base : "/tmp"} + "/weave-file-XXXXXX";
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

} // namespace

TEST_CASE("write, append, read and stat a file through the actor") {
  weave::runtime rt;
  auto files = spawn_file_actor(rt);
  caf::scoped_actor self{rt.system()};
  auto path = temp_dir() + "/notes.txt";
  auto fail = [](caf::error& err) { FAIL(weave::render(err)); };
  uint64_t written = 0;
  self->request(files, weave::test::patience, write_atom::value, path,
                std::string{"hello "})
    .receive([&](uint64_t n) { written += n; }, fail);
  self->request(files, weave::test::patience, append_atom::value, path,
                std::string{"world"})
    .receive([&](uint64_t n) { written += n; }, fail);
  CHECK(written == 11u);
  std::string text;
  self->request(files, weave::test::patience, read_atom::value, path)
    .receive([&](std::string& s) { text = s; }, fail);
  CHECK(text == "hello world");
  file_stat st;
  self->request(files, weave::test::patience, stat_atom::value, path)
    .receive([&](file_stat& s) { st = s; }, fail);
  CHECK(st.size == 11u);
  CHECK_FALSE(st.is_directory);
  CHECK(st.mtime_ns > 0);
  caf::anon_send_exit(files, caf::exit_reason::user_shutdown);
}

TEST_CASE("a missing file is an io_error naming the path and errno text") {
  weave::runtime rt;
  auto files = spawn_file_actor(rt);
  caf::scoped_actor self{rt.system()};
  caf::error err;
  self->request(files, weave::test::patience, read_atom::value,
                std::string{"/nonexistent/weave.txt"})
    .receive([&](std::string&) { FAIL("read a missing file"); },
             [&](caf::error& e) { err = e; });
  CHECK(weave::is(err, weave::errc::io_error));
  CHECK(weave::render(err)
        == "weave::io_error: open '/nonexistent/weave.txt': No such file or "
           "directory");
  caf::anon_send_exit(files, caf::exit_reason::user_shutdown);
}

TEST_CASE("permission errors come back as errors too") {
  if (::geteuid() == 0) {
    // root may write anywhere; use a path that is a directory instead.
    weave::runtime rt;
    auto files = spawn_file_actor(rt);
    caf::scoped_actor self{rt.system()};
    auto dir = temp_dir();
    caf::error err;
    self->request(files, weave::test::patience, write_atom::value, dir,
                  std::string{"x"})
      .receive([&](uint64_t) { FAIL("wrote over a directory"); },
               [&](caf::error& e) { err = e; });
    CHECK(weave::render(err).find("Is a directory") != std::string::npos);
    CHECK(weave::render(err).find(dir) != std::string::npos);
    caf::anon_send_exit(files, caf::exit_reason::user_shutdown);
    return;
  }
  weave::runtime rt;
  auto files = spawn_file_actor(rt);
  caf::scoped_actor self{rt.system()};
  caf::error err;
  self->request(files, weave::test::patience, write_atom::value,
                std::string{"/proc/version"}, std::string{"x"})
    .receive([&](uint64_t) { FAIL("wrote /proc/version"); },
             [&](caf::error& e) { err = e; });
  CHECK(weave::render(err).find("Permission denied") != std::string::npos);
  caf::anon_send_exit(files, caf::exit_reason::user_shutdown);
}

TEST_CASE("the actor's blocking calls run on the pool, not the scheduler") {
  weave::runtime rt;
  weave::blocking_pool io{rt, 2, "io"};
  auto files = spawn_file_actor(rt, io);
  caf::scoped_actor self{rt.system()};
  auto path = temp_dir() + "/a.txt";
  self->request(files, weave::test::patience, write_atom::value, path,
                std::string{"x"})
    .receive([](uint64_t) {}, [](caf::error& e) { FAIL(weave::render(e)); });
  CHECK(io.stats().completed == 1u); // counted before the reply is sent
  caf::anon_send_exit(files, caf::exit_reason::user_shutdown);
}

TEST_CASE("a file actor outlives its pool: requests fail with shut_down") {
  weave::runtime rt;
  auto pool = std::make_unique<weave::blocking_pool>(rt, 1, "files");
  auto files = spawn_file_actor(rt, *pool);
  pool.reset();
  caf::scoped_actor self{rt.system()};
  caf::error got;
  self->request(files, weave::test::patience, stat_atom::value,
                std::string{"/"})
    .receive([&](file_stat&) { got = caf::make_error(caf::sec::none); },
             [&](caf::error& err) { got = err; });
  CHECK(weave::is(got, weave::errc::shut_down));
  self->send_exit(files, caf::exit_reason::user_shutdown);
}

TEST_CASE("spawn_file_actor after shutdown fails with shut_down") {
  weave::runtime rt;
  rt.shutdown();
  try {
    spawn_file_actor(rt);
    FAIL("a file actor was spawned after shutdown");
  } catch (const weave::exception& e) {
    CHECK(e.code() == weave::errc::shut_down);
  }
}
