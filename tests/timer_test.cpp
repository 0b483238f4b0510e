// Timers: one-shot and periodic messages that can be cancelled; a periodic
// timer whose receiver falls behind skips the missed ticks and keeps its
// phase.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

#include "caf/all.hpp"
#include "actors/timer.hpp"
#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::actors::send_after;
using weave::actors::send_every;
using weave::actors::timer_stats;
using state_type = weave::actors::timer_stats::state_type;

namespace {

using tick_atom = caf::atom_constant<caf::atom("tick")>;
using fence_atom = caf::atom_constant<caf::atom("fence")>;

/// How long the target of the shutdown test stays alive by itself.
constexpr auto target_lifetime = 1s;

/// A message carrying a name.
caf::message named(std::string name) {
  return caf::make_message(std::move(name));
}

/// Receives messages until the string `until`; returns those before it.
std::vector<std::string> receive_until(caf::scoped_actor& self,
                                       const std::string& until) {
  std::vector<std::string> seen;
  bool done = false;
  while (!done) {
    bool got = false;
    self->receive(
      [&](std::string& x) {
        got = true;
        if (x == until)
          done = true;
        else
          seen.emplace_back(std::move(x));
      },
      [&](tick_atom) { got = true; seen.emplace_back("tick"); },
      caf::after(weave::test::patience) >> [] {});
    if (!got) {
      seen.emplace_back("<nothing within patience>");
      break;
    }
  }
  return seen;
}

} // namespace

TEST_CASE("a cancelled one-shot timer is never delivered") {
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  // Due late enough that the cancel below comes first also when the test
  // thread is descheduled for a while (a sanitizer on a busy machine).
  auto first = send_after(rt, self, 1s, named("first"));
  // The fence is due later: without the cancel, "first" would come before.
  auto fence = send_after(rt, self, 1050ms, named("fence"));
  CHECK(first.cancel());
  CHECK_FALSE(first.cancel()); // once
  CHECK(receive_until(self, "fence").empty());
  CHECK(first.stats().state == state_type::cancelled);
  CHECK(first.stats().fired == 0);
  CHECK(fence.stats().state == state_type::fired);
  CHECK_FALSE(fence.cancel()); // too late: delivered
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a cancel racing the firing: exactly one of delivered, cancelled") {
  constexpr int rounds = 200;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  int cancelled = 0;
  int delivered = 0;
  for (int i = 0; i < rounds; ++i) {
    auto t = send_after(rt, self, std::chrono::microseconds{i % 20},
                        named("shot"));
    // Spin a varying while so that the cancel lands before, during and
    // after the firing.
    auto until = std::chrono::steady_clock::now()
                 + std::chrono::microseconds{(i * 7) % 25};
    while (std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
    bool was_cancelled = t.cancel();
    send_after(rt, self, 1ms, named("fence"));
    auto seen = receive_until(self, "fence");
    auto shots = static_cast<int>(std::count(seen.begin(), seen.end(), "shot"));
    CHECK(shots + (was_cancelled ? 1 : 0) == 1);
    CHECK(seen.size() == static_cast<size_t>(shots));
    CHECK(t.stats().state
          == (was_cancelled ? state_type::cancelled : state_type::fired));
    cancelled += was_cancelled ? 1 : 0;
    delivered += shots;
  }
  CHECK(cancelled + delivered == rounds);
  MESSAGE("cancelled " << cancelled << ", delivered " << delivered);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a periodic timer ticks until cancelled") {
  constexpr uint64_t ticks = 5;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  auto t = send_every(rt, self, 10ms, caf::make_message(tick_atom::value));
  for (uint64_t i = 0; i < ticks; ++i) {
    bool got = false;
    // Answering (returning from the handler) lets the next tick go.
    self->receive([&](tick_atom) { got = true; },
                  caf::after(weave::test::patience) >> [] {});
    REQUIRE(got);
  }
  CHECK(t.stats().fired >= ticks);
  CHECK(t.cancel());
  CHECK_FALSE(t.cancel());
  auto s = t.stats();
  CHECK(s.state == state_type::cancelled);
  CHECK(s.fired + s.skipped == s.last_tick);
  // At most one tick sent before the cancel may still be on its way;
  // none after the fence (due after the next tick would have been).
  send_after(rt, self, 50ms, named("fence"));
  auto seen = receive_until(self, "fence");
  CHECK(seen.size() <= 1);
  CHECK(t.stats().fired <= ticks + 1);
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a periodic timer skips the ticks a slow receiver missed") {
  constexpr auto period = 50ms;
  constexpr int blocked_periods = 5;
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  auto before = std::chrono::steady_clock::now();
  auto t = send_every(rt, self, period, caf::make_message(tick_atom::value));
  bool got = false;
  self->receive(
    [&](tick_atom) {
      got = true;
      // The receiver is stuck for several periods before it answers.
      std::this_thread::sleep_for(period * blocked_periods);
    },
    caf::after(weave::test::patience) >> [] {});
  REQUIRE(got);
  // Skipped, not queued: the next tick comes only after the answer, alone.
  got = false;
  std::chrono::steady_clock::time_point arrived;
  timer_stats s;
  self->receive(
    [&](tick_atom) {
      got = true;
      arrived = std::chrono::steady_clock::now();
      // Read before answering: the next tick is sent only after the answer.
      s = t.stats();
    },
    caf::after(weave::test::patience) >> [] {});
  REQUIRE(got);
  INFO("fired " << s.fired << ", skipped " << s.skipped << ", last tick "
                << s.last_tick);
  CHECK(s.fired == 2);
  // Tick 1 was due at start + period; the answer came at least
  // blocked_periods later, so every tick up to 1 + blocked_periods was
  // missed.
  CHECK(s.skipped >= static_cast<uint64_t>(blocked_periods - 1));
  CHECK(s.fired + s.skipped == s.last_tick);
  // The phase is kept: tick k comes no earlier than start + k * period.
  CHECK(arrived >= before + period * static_cast<int>(s.last_tick));
  CHECK(t.cancel());
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("a timer whose target ended stops") {
  weave::runtime rt{weave::test::io_config()};
  auto target = rt.system().spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](tick_atom) {}};
  });
  auto t = send_every(rt, target, 10ms, caf::make_message(tick_atom::value));
  caf::anon_send_exit(target, caf::exit_reason::kill);
  CHECK(weave::test::eventually(
    [&] { return t.stats().state == state_type::stopped; }));
  CHECK_FALSE(t.cancel());
  // A one-shot timer whose target is gone (no handle left) sends nothing
  // and says so.
  constexpr auto shot_delay = 1s;
  auto started = std::chrono::steady_clock::now();
  caf::actor_addr addr;
  weave::actors::timer shot;
  {
    auto gone = rt.system().spawn(
      [](caf::event_based_actor*) -> caf::behavior { return {[](tick_atom) {}}; });
    addr = gone.address();
    shot = send_after(rt, gone, shot_delay, named("shot"));
    caf::anon_send_exit(gone, caf::exit_reason::kill);
  }
  REQUIRE(weave::test::eventually(
    [&] { return !caf::actor_cast<caf::actor>(addr); }));
  if (std::chrono::steady_clock::now() - started < shot_delay) {
    caf::scoped_actor self{rt.system()};
    send_after(rt, self, shot_delay + 10ms, named("fence"));
    receive_until(self, "fence");
    CHECK(shot.stats().state == state_type::stopped);
    CHECK(shot.stats().fired == 0);
  } else {
    MESSAGE("the target took longer than the timer to go: not checked");
  }
  CHECK(rt.slow_handlers() == 0);
}

TEST_CASE("timers stop at shutdown") {
  weave::actors::timer once;
  weave::actors::timer every;
  {
    weave::runtime rt{weave::test::io_config()};
    {
      // Alive (a periodic timer stops when its target ends) until well
      // after the shutdown began, then it ends by itself.
      auto target = rt.system().spawn(
        [](caf::event_based_actor* a) -> caf::behavior {
          a->delayed_send(a, target_lifetime, fence_atom::value);
          return {[a](fence_atom) { a->quit(); }};
        });
      once = send_after(rt, target, 1h, named("late"));
      every = send_every(rt, target, 1h, named("tick"));
    }
    CHECK(rt.slow_handlers() == 0);
    rt.shutdown();
  }
  CHECK(once.stats().state == state_type::shut_down);
  CHECK(every.stats().state == state_type::shut_down);
  CHECK_FALSE(once.cancel());
  CHECK_FALSE(every.cancel());
}

TEST_CASE("bad durations are invalid_argument; hours::max never fires") {
  weave::runtime rt{weave::test::io_config()};
  caf::scoped_actor self{rt.system()};
  CHECK_THROWS_AS(send_after(rt, self, -1ms, named("x")), weave::exception);
  CHECK_THROWS_AS(send_every(rt, self, -1ms, named("x")), weave::exception);
  CHECK_THROWS_AS(send_every(rt, self, 0ms, named("x")), weave::exception);
  CHECK_THROWS_AS(send_after(rt, caf::actor{}, 1ms, named("x")),
                  weave::exception);
  try {
    send_after(rt, self, -1ms, named("x"));
  } catch (const weave::exception& e) {
    CHECK(e.code() == weave::errc::invalid_argument);
  }
  auto never = send_after(rt, self, std::chrono::hours::max(), named("never"));
  auto never_every = send_every(rt, self, std::chrono::hours::max(),
                                named("never"));
  send_after(rt, self, 10ms, named("fence"));
  CHECK(receive_until(self, "fence").empty());
  CHECK(never.stats().state == state_type::armed);
  CHECK(never.stats().fired == 0);
  CHECK(never.cancel());
  CHECK(never_every.cancel());
  CHECK(rt.slow_handlers() == 0);
}
