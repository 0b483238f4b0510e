// A thread of the user's that spawned an actor pins the actor system to
// itself (CAF 0.17.6 keeps a thread-local reference that the system's
// destructor waits for): while it runs, a shutdown started on another thread
// cannot finish destroying the system. `weave::release_this_thread()` lets
// go of that reference.
#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <thread>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::test::latch;

namespace {

/// The deadline every case shuts down with.
constexpr auto short_deadline = std::chrono::milliseconds{100};

/// An actor that ends at once (it has no behavior).
void ends_at_once(caf::event_based_actor*) {
  // nop
}

/// Runs a thread that spawns an actor, optionally releases itself (twice),
/// and stays alive until the test lets it go; shuts the runtime down from
/// the test thread meanwhile and returns the report.
weave::shutdown_report shut_down_while_spawner_lives(bool release) {
  weave::runtime rt;
  latch spawned{1};
  latch ended{1};
  latch let_go{1};
  std::thread spawner{[&] {
    auto a = rt.system().spawn(ends_at_once);
    // Runs at once if the actor ended already.
    a->attach_functor([&ended] { ended.count_down(); });
    a = nullptr;
    if (release) {
      weave::release_this_thread();
      weave::release_this_thread(); // twice: harmless
    }
    spawned.count_down();
    let_go.wait(weave::test::patience * 3);
    if (release)
      weave::release_this_thread(); // after shutdown: harmless
  }};
  REQUIRE(spawned.wait());
  // The actor is gone: the shutdown has no actor to wait for.
  REQUIRE(ended.wait());
  auto report = rt.shutdown(short_deadline);
  let_go.count_down();
  spawner.join();
  return report;
}

} // namespace

TEST_CASE("a running thread that spawned an actor holds up a shutdown run "
          "from another thread") {
  auto report = shut_down_while_spawner_lives(false);
  // The shutdown's own thread waits for the spawner's reference; the caller
  // returned at its deadline and counted that thread.
  CHECK(report.threads_abandoned == 1);
  CHECK(report.total >= short_deadline);
}

TEST_CASE("release_this_thread lets a shutdown run from another thread "
          "finish while the spawning thread still runs") {
  auto report = shut_down_while_spawner_lives(true);
  CHECK(report.threads_abandoned == 0);
  CHECK(report.empty());
  CHECK(report.total < short_deadline + weave::runtime::shutdown_margin);
}

TEST_CASE("release_this_thread is harmless on a thread that never spawned, "
          "without a runtime, and on weave's own threads") {
  weave::release_this_thread();
  std::thread plain{[] { weave::release_this_thread(); }};
  plain.join();
  weave::runtime rt;
  // On a pool worker: the job still completes, and so does shutdown.
  auto f = rt.default_pool().submit([] {
    weave::release_this_thread();
    return 42;
  });
  CHECK(f.get() == 42);
  weave::loop lp{rt, "release-loop"};
  lp.submit([] { weave::release_this_thread(); }).get();
  auto report = rt.shutdown(short_deadline);
  CHECK(report.empty());
  weave::release_this_thread(); // after shutdown
}
