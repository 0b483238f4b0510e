// actors/process_actor: children with their pipes as channels; exit
// statuses as a future, a reply and a message to the owner; children killed
// and reaped when the owner ends or the runtime shuts down; errors name the
// call, the program and the errno text.
#include <doctest/doctest.h>

#include <csignal>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/process_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using weave::test::drain;
using weave::test::not_our_child;
using weave::test::patience;
using weave::test::proc_gone;
using weave::test::sh;

// Owner actors are function actors with one unused `int` argument: CAF
// 0.17.6 binds a null reference for a function actor without arguments
// (tools/ubsan.supp), and under UBSan the first such suppressed report is
// symbolized inside the actor's first resume, which the blocking detector
// would rightly count as a slow handler.

namespace {

/// The text of the `weave::exception` that `fn` throws ("" if none).
template <class F>
std::string error_of(F fn, weave::errc expected) {
  try {
    fn();
  } catch (const weave::exception& e) {
    CHECK(e.code() == expected);
    return e.what();
  }
  FAIL_CHECK("no exception");
  return "";
}

} // namespace

TEST_CASE("cat echoes stdin to stdout in order and exits with 0") {
  weave::runtime rt{weave::test::io_config()};
  process_options opts;
  opts.argv = {"cat"};
  auto p = spawn_process(rt, opts);
  REQUIRE(p.pid > 0);
  REQUIRE(p.in);
  REQUIRE(p.out);
  std::string sent;
  for (int i = 0; i < 100; ++i) {
    auto line = "line " + std::to_string(i) + "\n";
    sent += line;
    REQUIRE(p.in->put(line) == weave::channel_status::ok);
  }
  p.in->close(); // end of file for cat
  CHECK(drain(*p.out) == sent);
  CHECK(drain(*p.err).empty());
  auto st = p.exited.get();
  CHECK(st.success());
  CHECK(st.pid == p.pid);
  CHECK(st.to_string() == "exit code 0");
  CHECK(proc_gone(p.pid));
  CHECK(not_our_child(p.pid));
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("an exit code reaches the future, wait and the owner") {
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  auto p = spawn_process(rt, caf::actor_cast<caf::actor>(self),
                         sh("exit 3"));
  exit_status told;
  self->receive([&](exited_atom, const exit_status& st) { told = st; },
                caf::after(patience) >> [] { FAIL_CHECK("no exit message"); });
  CHECK(told.code == 3);
  CHECK(told.pid == p.pid);
  exit_status replied;
  self->request(p.actor, patience, wait_atom::value)
    .receive([&](const exit_status& st) { replied = st; },
             [](caf::error& err) { FAIL_CHECK(weave::render(err)); });
  CHECK(replied.code == 3);
  auto st = p.exited.get();
  CHECK(st.code == 3);
  CHECK(st.signal == 0);
  CHECK_FALSE(st.success());
  CHECK(st.to_string() == "exit code 3");
  CHECK(not_our_child(p.pid));
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("an owner that nothing else references lives to hear the exit") {
  weave::runtime rt{weave::test::io_config()};
  weave::promise<int> heard;
  // The spawner drops its handle: only the process actor refers to it.
  rt.system().spawn([heard](caf::event_based_actor* self, int) mutable {
    // The child outlives the owner's init (the delay creates that case).
    spawn_process(self, sh("sleep 0.2; exit 4"));
    return caf::behavior{
      [=](exited_atom, const exit_status& st) mutable {
        heard.set_value(st.code);
        self->quit();
      },
    };
  }, 0);
  auto f = heard.get_future();
  REQUIRE(f.wait_for(patience));
  CHECK(f.get() == 4);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a wait sent before the exit is answered at the exit") {
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  auto opts = sh("read x; exit 5");
  auto p = spawn_process(rt, opts);
  auto reply = self->request(p.actor, patience, wait_atom::value);
  p.in->put(std::string{"go\n"});
  exit_status replied;
  std::move(reply).receive([&](const exit_status& st) { replied = st; },
                           [](caf::error& err) {
                             FAIL_CHECK(weave::render(err));
                           });
  CHECK(replied.code == 5);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a death by signal is reported, and a reaped child is not signalled") {
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  process_options opts;
  opts.argv = {"sleep", "30"};
  auto p = spawn_process(rt, opts);
  bool sent = false;
  self->request(p.actor, patience, kill_atom::value, SIGTERM)
    .receive([&](bool x) { sent = x; },
             [](caf::error& err) { FAIL_CHECK(weave::render(err)); });
  CHECK(sent);
  auto st = p.exited.get();
  CHECK(st.signal == SIGTERM);
  CHECK(st.code == -1);
  CHECK(st.to_string() == "killed by SIGTERM");
  CHECK(proc_gone(p.pid));
  CHECK(not_our_child(p.pid));
  self->request(p.actor, patience, kill_atom::value, SIGKILL)
    .receive([&](bool x) { sent = x; },
             [](caf::error& err) { FAIL_CHECK(weave::render(err)); });
  CHECK_FALSE(sent);
  std::string why;
  self->request(p.actor, patience, kill_atom::value, 0)
    .receive([](bool) { FAIL_CHECK("signal 0 accepted"); },
             [&](caf::error& err) { why = weave::render(err); });
  CHECK(why.find("invalid_argument") != std::string::npos);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("new_process_group: a signal reaches the child's whole group") {
  weave::runtime rt{weave::test::io_config()};
  auto opts = sh("sleep 30 & echo $!; wait");
  opts.new_process_group = true;
  auto p = spawn_process(rt, opts);
  auto line = p.out->get(patience);
  REQUIRE(line);
  int grandchild = std::stoi(*line.value);
  caf::scoped_actor self{rt.system()};
  self->request(p.actor, patience, kill_atom::value, SIGTERM)
    .receive([](bool sent) { CHECK(sent); },
             [](caf::error& err) { FAIL_CHECK(weave::render(err)); });
  CHECK(p.exited.get().signal == SIGTERM);
  // The grandchild got it too (whoever adopted it reaps it).
  CHECK(weave::test::eventually([&] {
    std::ifstream stat{"/proc/" + std::to_string(grandchild) + "/stat"};
    std::string pid, comm, state;
    return !(stat >> pid >> comm >> state) || state == "Z";
  }));
  CHECK(drain(*p.out).empty()); // closed once the grandchild is gone
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("an exit message to the process actor kills the child") {
  weave::runtime rt{weave::test::io_config()};
  process_options opts;
  opts.argv = {"sleep", "30"};
  auto p = spawn_process(rt, opts);
  caf::anon_send_exit(p.actor, caf::exit_reason::kill);
  auto st = p.exited.get();
  CHECK(st.signal == SIGKILL);
  CHECK(not_our_child(p.pid));
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a program that does not exist: io_error naming call, program, "
          "errno text") {
  weave::runtime rt{weave::test::io_config()};
  process_options opts;
  opts.argv = {"weave-no-such-program"};
  auto what = error_of([&] { spawn_process(rt, opts); },
                       weave::errc::io_error);
  CHECK(what.find("posix_spawn 'weave-no-such-program': No such file or "
                  "directory")
        != std::string::npos);
  opts.argv = {"true"};
  opts.cwd = "/weave-no-such-dir";
  what = error_of([&] { spawn_process(rt, opts); }, weave::errc::io_error);
  CHECK(what.find("posix_spawn 'true' in '/weave-no-such-dir'")
        != std::string::npos);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a missing program spawned from an actor: the owner hears the "
          "io_error, the streams close with it") {
  weave::runtime rt{weave::test::io_config()};
  weave::promise<std::string> heard;
  std::optional<process> child;
  weave::test::latch spawned{1};
  auto owner = rt.system().spawn([&, heard](caf::event_based_actor* self, int) mutable {
    process_options opts;
    opts.argv = {"weave-no-such-program"};
    child = spawn_process(self, opts); // does not throw on this thread
    spawned.count_down();
    return caf::behavior{
      [=](exited_atom, const caf::error& err) mutable {
        heard.set_value(weave::render(err));
      },
      [=](exited_atom, const exit_status&) mutable {
        heard.set_value("exited?");
      },
    };
  }, 0);
  REQUIRE(spawned.wait());
  auto f = heard.get_future();
  REQUIRE(f.wait_for(patience));
  auto what = f.get();
  CHECK(what.find("posix_spawn 'weave-no-such-program': No such file or "
                  "directory")
        != std::string::npos);
  auto r = child->exited.get_result();
  REQUIRE_FALSE(r);
  CHECK(weave::is(r.error(), weave::errc::io_error));
  CHECK(child->out->get(patience).status == weave::channel_status::closed);
  CHECK(weave::is(child->out->close_reason(), weave::errc::io_error));
  caf::anon_send_exit(owner, caf::exit_reason::kill);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("bad options are invalid_argument") {
  weave::runtime rt{weave::test::io_config()};
  auto bad = [&](process_options opts, const std::string& part) {
    auto what = error_of([&] { spawn_process(rt, opts); },
                         weave::errc::invalid_argument);
    CHECK_MESSAGE(what.find(part) != std::string::npos, what);
  };
  bad(process_options{}, "argv must name a program");
  auto opts = sh("true");
  opts.capacity = 0;
  bad(opts, "capacity");
  opts = sh("true");
  opts.chunk_size = 0;
  bad(opts, "chunk_size");
  opts = sh("true");
  opts.env = std::vector<std::string>{"NOEQUALS"};
  bad(opts, "NAME=value");
  opts = sh("true");
  opts.stdout_overflow = weave::overflow::fail;
  bad(opts, "overflow::fail");
  opts = sh("true");
  opts.kill_signal = 0;
  bad(opts, "kill_signal");
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("env and cwd reach the child; inherit and null streams") {
  weave::runtime rt{weave::test::io_config()};
  auto opts = sh("echo \"$WEAVE_X\"; pwd; cat");
  opts.env = std::vector<std::string>{"WEAVE_X=forty-two",
                                      "PATH=/usr/bin:/bin"};
  opts.cwd = "/";
  opts.stdin_mode = stdio_mode::null;
  opts.stderr_mode = stdio_mode::inherit;
  auto p = spawn_process(rt, opts);
  CHECK_FALSE(p.in);
  CHECK_FALSE(p.err);
  CHECK(drain(*p.out) == "forty-two\n/\n");
  CHECK(p.exited.get().success());
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("the owner's end kills its children; each is reaped") {
  weave::runtime rt{weave::test::io_config()};
  std::mutex mtx;
  std::vector<process> children;
  weave::test::latch started{1};
  weave::test::failures bad;
  auto owner = rt.system().spawn([&](caf::event_based_actor* self, int) {
    try {
      std::unique_lock<std::mutex> guard{mtx};
      for (int i = 0; i < 3; ++i) {
        process_options opts;
        opts.argv = {"sleep", "30"};
        children.push_back(spawn_process(self, opts));
      }
    } catch (const std::exception& e) {
      bad.add(e.what());
    }
    started.count_down();
    return caf::behavior{[](int) {}};
  }, 0);
  REQUIRE(started.wait());
  REQUIRE(bad.messages() == "");
  caf::anon_send_exit(owner, caf::exit_reason::kill);
  std::unique_lock<std::mutex> guard{mtx};
  REQUIRE(children.size() == 3);
  for (auto& c : children) {
    CHECK(c.pid == -1); // spawned on the reaper's thread, not the actor's
    auto st = c.exited.get();
    CHECK(st.signal == SIGKILL);
    CHECK(st.pid > 0);
    CHECK(proc_gone(st.pid));
    CHECK(not_our_child(st.pid));
  }
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("shutdown terminates every child in time and reports their "
          "statuses") {
  // Only the futures and pids outlive the runtime (no actor handles).
  std::vector<std::pair<int, weave::future<exit_status>>> children;
  weave::shutdown_report report;
  {
    weave::runtime rt{weave::test::io_config()};
    for (int i = 0; i < 2; ++i) {
      process_options opts;
      opts.argv = {"sleep", "30"};
      auto p = spawn_process(rt, opts);
      children.emplace_back(p.pid, p.exited);
    }
    // One that ignores SIGTERM: SIGKILL at the deadline. It says when it
    // ignores it.
    auto p = spawn_process(rt, sh("trap '' TERM; echo ready; exec sleep 30"));
    children.emplace_back(p.pid, p.exited);
    auto ready = p.out->get(patience);
    REQUIRE(ready);
    CHECK(*ready.value == "ready\n");
    p.actor = nullptr;
    CHECK(rt.slow_handlers() == 0);
    report = rt.shutdown(500ms);
  }
  CHECK(report.total < 500ms + weave::runtime::shutdown_margin);
  CHECK(report.threads_abandoned == 0);
  // The ignoring one ran until the deadline: SIGKILL.
  CHECK(report.total >= 500ms);
  std::vector<int> signals;
  for (auto& [pid, exited] : children) {
    REQUIRE(exited.wait_for(0s)); // reported by the time shutdown returned
    signals.push_back(exited.get().signal);
    CHECK(proc_gone(pid));
    CHECK(not_our_child(pid));
  }
  CHECK(signals == std::vector<int>{SIGTERM, SIGTERM, SIGKILL});
}

TEST_CASE("spawning after shutdown began is refused with shut_down") {
  weave::runtime rt{weave::test::io_config()};
  rt.shutdown();
  process_options opts;
  opts.argv = {"true"};
  error_of([&] { spawn_process(rt, opts); }, weave::errc::shut_down);
}
