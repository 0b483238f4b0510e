// The process actor, a hostile review (thirteenth session); each case
// failed before its fix:
// - a `process` handle kept past the runtime's shutdown held an actor the
//   shutdown never ended (dropping it after the actor system was gone ran
//   CAF's cleanup on a destroyed system);
// - a `wait` pending when the actor was killed was never answered (CAF
//   0.17.6 drops an undelivered response promise silently);
// - a spawn that failed on the reaper's thread (spawned from an actor) left
//   the shutdown waiting for a child that never existed, until its deadline.
#include <doctest/doctest.h>

#include <chrono>
#include <optional>

#include "actors/process_actor.hpp"
#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/process_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using namespace weave::actors;
using weave::test::patience;
using weave::test::sh;

TEST_CASE("a process handle kept past the runtime's shutdown: the shutdown "
          "ends its actor") {
  std::optional<process> kept;
  auto ended = std::make_shared<weave::test::latch>(1);
  {
    weave::runtime rt{weave::test::io_config()};
    kept = spawn_process(rt, sh("exit 3"));
    CHECK(kept->exited.get().code == 3);
    auto ptr = caf::actor_cast<caf::strong_actor_ptr>(kept->actor);
    REQUIRE(ptr);
    ptr->get()->attach_functor(
      [ended](const caf::error&) { ended->count_down(); });
    ptr = nullptr;
    rt.shutdown();
    // Ended by the time the shutdown returned: no wait here.
    CHECK(ended->wait(0ms));
  }
  kept.reset(); // after the actor system: must not touch it
}

TEST_CASE("a wait pending when the process actor is killed is answered") {
  weave::runtime rt{weave::test::io_config()};
  auto p = spawn_process(rt, sh("exec sleep 30"));
  caf::scoped_actor self{rt.system()};
  auto pending = self->request(p.actor, caf::infinite, wait_atom::value);
  // Served after the wait: the wait is queued in the actor by then.
  auto kill_answer = self->request(p.actor, caf::infinite, kill_atom::value, 0);
  kill_answer.receive([](bool) {}, [](caf::error&) {});
  caf::anon_send_exit(p.actor, caf::exit_reason::kill);
  caf::error err;
  bool answered = false;
  pending.receive(
    [&](exit_status&) { answered = true; },
    [&](caf::error& e) {
      answered = true;
      err = std::move(e);
    });
  CHECK(answered);
  INFO(weave::render(err));
  CHECK(weave::is(err, weave::errc::closed));
  // The actor's end killed the child.
  auto st = p.exited.get();
  CHECK(st.signal == SIGKILL);
}

TEST_CASE("a spawn from an actor that fails: the shutdown does not wait for "
          "a child that never existed") {
  auto cfg = weave::test::io_config();
  weave::runtime rt{cfg};
  std::optional<process> kept;
  weave::test::latch spawned{1};
  rt.system().spawn([&](caf::event_based_actor* self) {
    process_options opts;
    opts.argv = {"/nonexistent/weave-program"};
    kept = spawn_process(self, opts);
    spawned.count_down();
  });
  REQUIRE(spawned.wait());
  REQUIRE(kept->exited.wait_for(patience));
  CHECK(!kept->exited.get_result());
  auto before = std::chrono::steady_clock::now();
  auto report = rt.shutdown(3s);
  auto took = std::chrono::steady_clock::now() - before;
  MESSAGE(report.to_string());
  CHECK(took < 2s);
}
