// The scheduler spreads work: runnable actors that an actor creates (by a
// send or a spawn from its handler) are picked up by idle scheduler threads,
// not left queued behind the worker that created them.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;

namespace {

/// Scheduler threads in these tests.
constexpr size_t scheduler_threads = 2;

/// CPU-bound tasks one actor fans out, and the CPU each one burns.
constexpr size_t fanout_tasks = 160;
constexpr auto task_cpu = 5ms;

/// With the tasks spread over both threads the busiest one does about half
/// the work (speed-up ~2); all on one thread gives 1.
constexpr double min_speedup = 1.5;

/// Long enough for idle scheduler threads to finish polling and sleep.
constexpr auto idle_wait = 20ms;

/// The calling thread's CPU time.
std::chrono::nanoseconds thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
}

/// Burns `d` of this thread's CPU time; returns what it burned.
std::chrono::nanoseconds burn(std::chrono::nanoseconds d) {
  auto t0 = thread_cpu();
  volatile unsigned sink = 0;
  while (thread_cpu() - t0 < d)
    for (int i = 0; i < 1000; ++i)
      sink = sink + i;
  return thread_cpu() - t0;
}

/// The CPU each scheduler thread spent on the tasks.
class ledger {
public:
  void add(std::thread::id who, std::chrono::nanoseconds cpu) {
    std::lock_guard<std::mutex> guard{mtx_};
    per_thread_[who] += cpu;
  }

  /// Total task CPU over the busiest thread's share: the speed-up that the
  /// placement allowed, whatever else the machine was running (a loaded
  /// machine stretches the wall clock, not this).
  double speedup() {
    std::lock_guard<std::mutex> guard{mtx_};
    std::chrono::nanoseconds total{0}, busiest{0};
    for (auto& [who, cpu] : per_thread_) {
      total += cpu;
      busiest = std::max(busiest, cpu);
    }
    return busiest.count() > 0 ? double(total.count()) / busiest.count() : 0;
  }

  std::chrono::nanoseconds total() {
    std::lock_guard<std::mutex> guard{mtx_};
    std::chrono::nanoseconds sum{0};
    for (auto& [who, cpu] : per_thread_)
      sum += cpu;
    return sum;
  }

  size_t threads() {
    std::lock_guard<std::mutex> guard{mtx_};
    return per_thread_.size();
  }

private:
  std::mutex mtx_;
  std::map<std::thread::id, std::chrono::nanoseconds> per_thread_;
};

weave::runtime_config two_threads() {
  weave::runtime_config cfg;
  cfg.set("scheduler.max-threads", scheduler_threads);
  return cfg;
}

/// A CPU-bound task: burns `task_cpu` on its scheduler thread, books it.
/// Answers a `ping` (a string) at once.
caf::behavior cpu_task(ledger& book, weave::test::latch& done) {
  return {
    [&book, &done](int) {
      book.add(std::this_thread::get_id(), burn(task_cpu));
      done.count_down();
    },
    [](const std::string& ping) { return ping; },
  };
}

void report(const char* what, ledger& book, double wall_s) {
  MESSAGE(std::string{what} << ": " << book.threads() << " thread(s), speed-up "
               << book.speedup() << " by placement, "
               << std::chrono::duration<double>(book.total()).count() / wall_s
               << " by wall clock (" << wall_s << " s)");
}

} // namespace

TEST_CASE("CPU-bound work an actor sends to other actors runs on every "
          "scheduler thread") {
  weave::runtime rt{two_threads()};
  ledger book;
  weave::test::latch done{fanout_tasks};
  std::vector<caf::actor> tasks;
  for (size_t i = 0; i < fanout_tasks; ++i)
    tasks.push_back(rt.system().spawn([&] { return cpu_task(book, done); }));
  // Every task has started and waits for its message: the fan-out's sends,
  // not the spawns above, make them runnable.
  caf::scoped_actor test{rt.system()};
  for (auto& t : tasks)
    test->request(t, weave::test::patience, std::string{"ping"})
      .receive([](const std::string&) {},
               [](caf::error& err) { FAIL(caf::to_string(err)); });
  auto fanout = rt.system().spawn([tasks](caf::event_based_actor* self) {
    self->become([self, tasks](int x) {
      for (auto& t : tasks)
        self->send(t, x); // from a scheduler thread: queued on this worker
    });
  });
  // Let the scheduler go idle, so that the other thread is asleep when the
  // tasks become runnable (the assertions hold either way).
  std::this_thread::sleep_for(idle_wait);
  auto t0 = std::chrono::steady_clock::now();
  caf::anon_send(fanout, 1);
  REQUIRE(done.wait());
  report("send fan-out", book,
         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
           .count());
  CHECK(book.threads() == scheduler_threads);
  CHECK(book.speedup() >= min_speedup);
  for (auto& t : tasks)
    caf::anon_send_exit(t, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(fanout, caf::exit_reason::user_shutdown);
}

TEST_CASE("actors that an actor spawns run on every scheduler thread") {
  weave::runtime rt{two_threads()};
  ledger book;
  weave::test::latch done{fanout_tasks};
  auto parent = rt.system().spawn([&](caf::event_based_actor* self) {
    self->become([&, self](int) {
      // From a scheduler thread: each child is queued on this worker, its
      // work is in its first resume.
      for (size_t i = 0; i < fanout_tasks; ++i)
        self->spawn([&](caf::event_based_actor* child) {
          book.add(std::this_thread::get_id(), burn(task_cpu));
          done.count_down();
          child->quit();
        });
    });
  });
  std::this_thread::sleep_for(idle_wait);
  auto t0 = std::chrono::steady_clock::now();
  caf::anon_send(parent, 1);
  REQUIRE(done.wait());
  report("spawn fan-out", book,
         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
           .count());
  CHECK(book.threads() == scheduler_threads);
  CHECK(book.speedup() >= min_speedup);
  caf::anon_send_exit(parent, caf::exit_reason::user_shutdown);
}
