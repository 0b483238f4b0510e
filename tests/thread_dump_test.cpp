// runtime::dump(): every weave thread with its role, state, job (label,
// kind), elapsed time, deadline and stop request, read without stopping
// anybody.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>
#include <sstream>
#include <string>

#include "caf/all.hpp"
#include "runtime/labeled.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::thread_dump;

namespace {

using clock_type = std::chrono::steady_clock;

/// How long a stuck job is kept stuck before the dump, so that its elapsed
/// time is clearly above zero.
constexpr auto stuck_for = 200ms;

/// How far a dump's elapsed time may lag: it is read from the coarse clock,
/// one kernel tick (at most 10 ms, at 100 Hz) behind.
constexpr auto coarse_tick = 10ms;

/// The entry running the job labelled `label`, or null.
const thread_dump::thread* by_label(const thread_dump& d,
                                    const std::string& label) {
  for (auto& t : d.threads)
    if (t.label == label)
      return &t;
  return nullptr;
}

size_t count_role(const thread_dump& d, thread_dump::role r) {
  size_t n = 0;
  for (auto& t : d.threads)
    n += t.role == r ? 1 : 0;
  return n;
}

weave::runtime_config config_with(size_t sched_threads) {
  weave::runtime_config cfg;
  cfg.set("scheduler.max-threads", sched_threads);
  // The jobs below are stopped and ignore it: keep them in place.
  cfg.set("weave.cancel-grace", caf::timespan{1h});
  return cfg;
}

} // namespace

TEST_CASE("a job stuck in a sleep shows with its label, thread and elapsed "
          "time") {
  weave::runtime rt{config_with(2)};
  weave::blocking_pool pool{rt, 2, "dumpio"};
  weave::test::latch started{1};
  weave::test::latch release{1};
  std::string ran_on;
  auto t0 = clock_type::now();
  auto fut = pool.submit(weave::labeled("fetch user", [&] {
    ran_on = weave::this_thread_name();
    started.count_down();
    while (!release.ready())
      std::this_thread::sleep_for(1ms); // stuck in a sleep
    return 7;
  }));
  REQUIRE(started.wait());
  auto seen = clock_type::now();
  std::this_thread::sleep_for(stuck_for); // creates the elapsed time
  auto before_dump = clock_type::now();
  auto d = rt.dump();
  auto t2 = clock_type::now();
  release.count_down();
  CHECK(fut.get() == 7);
  auto t = by_label(d, "fetch user");
  REQUIRE(t != nullptr);
  CHECK(t->name == ran_on);
  CHECK(t->name.rfind("dumpio_", 0) == 0);
  CHECK(t->role == thread_dump::role::pool_worker);
  CHECK(t->state == thread_dump::state::running);
  CHECK(t->job_kind == "submit");
  CHECK_FALSE(t->deadline_in);
  CHECK_FALSE(t->stop_requested);
  REQUIRE(t->elapsed);
  // Published when the job started: after the submit, before it ran.
  CHECK(*t->elapsed + coarse_tick >= before_dump - seen);
  CHECK(*t->elapsed <= t2 - t0 + coarse_tick);
  // Readable: one line naming the thread, its role, state and label.
  auto text = d.to_string();
  INFO(text);
  auto line_at = text.find("\n  " + ran_on + " ");
  REQUIRE(line_at != std::string::npos);
  auto line = text.substr(line_at + 3, text.find('\n', line_at + 1)
                                         - line_at - 3);
  CHECK(line.find("pool worker") != std::string::npos);
  CHECK(line.find("running") != std::string::npos);
  CHECK(line.find("\"fetch user\" (submit) for ") != std::string::npos);
  std::ostringstream os;
  os << d;
  CHECK(os.str() == text);
}

TEST_CASE("a dump taken as the runtime starts lists CAF's threads") {
  // CAF starts its workers and clock thread in the actor system's
  // constructor, and each enters the dump when it first runs; the runtime's
  // constructor waits for them (the CI once saw the clock thread missing).
  for (int round = 0; round < 20; ++round) {
    weave::runtime rt{config_with(3)};
    auto d = rt.dump();
    INFO("round " << round << "\n" << d.to_string());
    REQUIRE(count_role(d, thread_dump::role::scheduler) == 3);
    REQUIRE(count_role(d, thread_dump::role::clock) == 1);
    REQUIRE(d.find("weave-sched-2") != nullptr);
  }
}

TEST_CASE("the dump lists every weave thread of the runtime by role") {
  weave::runtime rt{config_with(2)};
  weave::blocking_pool pool{rt, 1, "solo"};
  CHECK(pool.submit([] { return 1; }).get() == 1);
  weave::loop lp{rt, "dump-loop"};
  CHECK(lp.submit([] { return 2; }).get() == 2);
  weave::test::latch release{1};
  weave::test::latch blocker_started{1};
  auto b = weave::spawn_blocker(rt, [&] {
    blocker_started.count_down();
    release.wait();
    return 3;
  }, "dump-blocker");
  REQUIRE(blocker_started.wait());
  auto d = rt.dump();
  INFO(d.to_string());
  CHECK(count_role(d, thread_dump::role::scheduler) == 2);
  CHECK(count_role(d, thread_dump::role::clock) == 1);
  auto worker = d.find("solo_0");
  REQUIRE(worker != nullptr);
  CHECK(worker->role == thread_dump::role::pool_worker);
  auto loop_thread = d.find("dump-loop");
  REQUIRE(loop_thread != nullptr);
  CHECK(loop_thread->role == thread_dump::role::loop);
  auto blocker = d.find("dump-blocker");
  REQUIRE(blocker != nullptr);
  CHECK(blocker->role == thread_dump::role::blocker);
  CHECK(d.find("weave-sched-0") != nullptr);
  CHECK(d.find("weave-sched-1") != nullptr);
  // weave's own service threads: the watchdog, and the deadline timer once
  // a timed submit started it.
  auto watchdog = d.find("weave-watchdog");
  REQUIRE(watchdog != nullptr);
  CHECK(watchdog->role == thread_dump::role::service);
  CHECK(pool.submit([] { return 4; }, std::chrono::hours{1}).get() == 4);
  // The timer's thread names itself when it starts: poll the dumps for it
  // (bounded), since nothing tells the test when that happened.
  thread_dump with_timer;
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  do {
    with_timer = rt.dump();
    auto t = with_timer.find("weave-timer");
    if (t != nullptr && t->role == thread_dump::role::service)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  } while (std::chrono::steady_clock::now() < give_up);
  INFO(with_timer.to_string());
  auto timer = with_timer.find("weave-timer");
  REQUIRE(timer != nullptr);
  CHECK(timer->role == thread_dump::role::service);
  CHECK(with_timer.to_string().find("weave-watchdog  service") != std::string::npos);
  release.count_down();
  CHECK(b.get() == 3);
  // A second runtime's threads are not in this one's dump.
  weave::runtime other{config_with(1)};
  weave::blocking_pool other_pool{other, 1, "elsewhere"};
  CHECK(other_pool.submit([] { return 4; }).get() == 4);
  CHECK(rt.dump().find("elsewhere_0") == nullptr);
  CHECK(other.dump().find("elsewhere_0") != nullptr);
  CHECK(other.dump().find("solo_0") == nullptr);
}

TEST_CASE("parked workers show as parked and running ones as running") {
  weave::runtime rt{config_with(2)};
  rt.on_slow_handler([](const weave::slow_handler_event&) {});
  weave::blocking_pool pool{rt, 2, "mixed"};
  weave::test::latch both{2};
  weave::test::latch release{1};
  // Two jobs that wait for each other run on both workers; one returns,
  // one stays.
  auto quick = pool.submit([&] {
    both.count_down();
    both.wait();
    return 1;
  });
  auto stuck = pool.submit(weave::labeled("stuck", [&] {
    both.count_down();
    release.wait();
    return 2;
  }));
  REQUIRE(both.wait());
  CHECK(quick.get() == 1);
  // An idle worker spins briefly (weave.spin), then parks.
  thread_dump d;
  bool parked = weave::test::eventually([&] {
    d = rt.dump();
    auto a = d.find("mixed_0");
    auto b = d.find("mixed_1");
    if (a == nullptr || b == nullptr)
      return false;
    auto idle = a->label == "stuck" ? b : a;
    return idle->state == thread_dump::state::parked;
  });
  INFO(d.to_string());
  CHECK(parked);
  auto running = by_label(d, "stuck");
  REQUIRE(running != nullptr);
  CHECK(running->state == thread_dump::state::running);
  // An actor that holds a scheduler thread shows there, running, by name.
  weave::test::latch in_handler{1};
  weave::test::latch leave{1};
  auto holder = rt.system().spawn([&](caf::event_based_actor*) -> caf::behavior {
    return {[&](int) {
      in_handler.count_down();
      leave.wait();
    }};
  });
  caf::anon_send(holder, 1);
  REQUIRE(in_handler.wait());
  d = rt.dump();
  const thread_dump::thread* sched = nullptr;
  for (auto& t : d.threads)
    if (t.role == thread_dump::role::scheduler && t.actor == holder.id())
      sched = &t;
  INFO(d.to_string());
  REQUIRE(sched != nullptr);
  CHECK(sched->state == thread_dump::state::running);
  CHECK(sched->name.rfind("weave-sched-", 0) == 0);
  REQUIRE(sched->elapsed);
  CHECK(*sched->elapsed >= 0ns);
  leave.count_down();
  release.count_down();
  CHECK(stuck.get() == 2);
  caf::anon_send_exit(holder, caf::exit_reason::user_shutdown);
  // Once idle, every scheduler thread parks (an idle runtime sleeps).
  CHECK(weave::test::eventually([&] {
    d = rt.dump();
    for (auto& t : d.threads)
      if (t.role == thread_dump::role::scheduler
          && t.state != thread_dump::state::parked)
        return false;
    return true;
  }));
}

TEST_CASE("a stop requested for a running job shows after cancel") {
  weave::runtime rt{config_with(2)};
  weave::blocking_pool pool{rt, 1, "stoppable"};
  weave::test::latch started{1};
  weave::test::latch release{1};
  // Ignores its token: it keeps running after the cancel (grace is 1h).
  auto fut = pool.submit(
    weave::labeled(std::string{"long report"}, [&](weave::stop_token) {
      started.count_down();
      release.wait();
    }),
    1h);
  REQUIRE(started.wait());
  auto d = rt.dump();
  auto t = by_label(d, "long report");
  REQUIRE(t != nullptr);
  CHECK_FALSE(t->stop_requested);
  REQUIRE(t->deadline_in);
  CHECK(*t->deadline_in > 59min);
  CHECK(*t->deadline_in <= 1h);
  CHECK(fut.cancel());
  d = rt.dump();
  INFO(d.to_string());
  t = by_label(d, "long report");
  REQUIRE(t != nullptr);
  CHECK(t->state == thread_dump::state::running);
  REQUIRE(t->stop_requested);
  CHECK(*t->stop_requested == weave::errc::cancelled);
  CHECK(d.to_string().find("stop requested (cancelled)") != std::string::npos);
  release.count_down();
  CHECK(fut.wait_for(weave::test::patience));
  // The next job on the same worker starts without the old stop.
  weave::test::latch next_started{1};
  weave::test::latch next_release{1};
  auto next = pool.submit(weave::labeled("fresh", [&] {
    next_started.count_down();
    next_release.wait();
  }));
  REQUIRE(next_started.wait());
  d = rt.dump();
  t = by_label(d, "fresh");
  REQUIRE(t != nullptr);
  CHECK_FALSE(t->stop_requested);
  next_release.count_down();
  next.get();
}

TEST_CASE("offloads, loop tasks and blockers show their kind and label") {
  weave::runtime rt{config_with(2)};
  weave::blocking_pool pool{rt, 1, "offl"};
  weave::loop lp{rt, "labelled-loop"};
  weave::test::latch started{3};
  weave::test::latch release{1};
  caf::scoped_actor self{rt.system()};
  auto handle = weave::offload(self, pool, weave::labeled("fetch user", [&] {
    started.count_down();
    release.wait();
    return 1;
  }));
  auto task = lp.submit(weave::labeled("poll feed", [&] {
    started.count_down();
    release.wait();
    return 2;
  }));
  auto b = weave::spawn_blocker(
    rt, weave::labeled("crunch", [&] { started.count_down(); release.wait(); }),
    "dump-blocker");
  REQUIRE(started.wait());
  auto d = rt.dump();
  INFO(d.to_string());
  auto off = by_label(d, "fetch user");
  REQUIRE(off != nullptr);
  CHECK(off->job_kind == "offload");
  CHECK(off->name == "offl_0");
  auto lt = by_label(d, "poll feed");
  REQUIRE(lt != nullptr);
  CHECK(lt->job_kind == "loop submit");
  CHECK(lt->name == "labelled-loop");
  CHECK(lt->role == thread_dump::role::loop);
  CHECK(lt->state == thread_dump::state::running);
  auto bt = by_label(d, "crunch");
  REQUIRE(bt != nullptr);
  CHECK(bt->name == "dump-blocker");
  CHECK(bt->role == thread_dump::role::blocker);
  release.count_down();
  int got = 0;
  handle.receive([&](int x) { got = x; },
                 [&](caf::error& err) { FAIL(weave::render(err)); });
  CHECK(got == 1);
  CHECK(task.get() == 2);
  b.get();
  // The loop's thread waits for its next task: parked, no job (published
  // just after the task's outcome).
  const thread_dump::thread* idle = nullptr;
  CHECK(weave::test::eventually([&] {
    d = rt.dump();
    idle = d.find("labelled-loop");
    return idle != nullptr && idle->state == thread_dump::state::parked;
  }));
  REQUIRE(idle != nullptr);
  CHECK(idle->label.empty());
  CHECK(idle->job_kind.empty());
}

TEST_CASE("a label longer than a record holds is cut, not lost") {
  weave::runtime rt{config_with(1)};
  weave::blocking_pool pool{rt, 1, "longlabel"};
  weave::test::latch started{1};
  weave::test::latch release{1};
  std::string label(200, 'x');
  label[0] = 'a';
  auto fut = pool.submit(weave::labeled(label, [&] {
    started.count_down();
    release.wait();
  }));
  REQUIRE(started.wait());
  auto d = rt.dump();
  auto t = d.find("longlabel_0");
  REQUIRE(t != nullptr);
  CHECK(t->label == label.substr(0, 63));
  release.count_down();
  fut.get();
}

TEST_CASE("the middleman's I/O thread is listed as a service, not as a "
          "scheduler worker") {
  // CAF 0.17.6 names its scheduler workers and the middleman's thread
  // alike ("caf.multiplexer").
  auto cfg = config_with(2);
  weave::enable_process_pools(cfg); // loads the middleman
  weave::runtime rt{std::move(cfg)};
  // Each worker binds its record when it first looks for work: run an
  // actor on each so both have.
  weave::test::latch both{2};
  for (int i = 0; i < 2; ++i)
    rt.default_pool().submit([&] { both.count_down(); });
  REQUIRE(both.wait());
  thread_dump d;
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  do {
    d = rt.dump();
    if (count_role(d, thread_dump::role::scheduler) == 2)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  } while (std::chrono::steady_clock::now() < give_up);
  INFO(d.to_string());
  CHECK(count_role(d, thread_dump::role::scheduler) == 2);
  CHECK(d.find("weave-sched-0") != nullptr);
  CHECK(d.find("weave-sched-1") != nullptr);
  CHECK(d.find("weave-sched-2") == nullptr);
  auto io = d.find("weave-middleman");
  REQUIRE(io != nullptr);
  CHECK(io->role == thread_dump::role::service);
}
