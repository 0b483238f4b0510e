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
#include <sys/resource.h>
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

/// Speed-up: how many scheduler threads were running a task, on average,
/// from the first task's start to the last one's end. Spread over both
/// threads, ~2; all on one thread, 1. It counts wall time a task held its
/// thread, so a loaded machine (which stretches each task and may give one
/// thread more CPU than the other) does not change it, unlike the ratio of
/// CPU time to wall time.
constexpr double min_speedup = 1.5;

/// More scheduler threads than this machine may have cores, and the
/// speed-up (as above) they must reach: ~4 when all of them take part.
constexpr size_t many_threads = 4;
constexpr double min_speedup_many = 2.5;

/// Long enough for idle scheduler threads to finish polling and sleep.
constexpr auto idle_wait = 20ms;

/// An idle runtime is watched this long, and may use this share of one
/// core (the watchdog and clock threads wake now and then; a spinning
/// worker would use ~100%).
constexpr auto idle_span = 300ms;
constexpr double max_idle_cpu_share = 0.05;

using clock_type = std::chrono::steady_clock;

/// The calling thread's CPU time.
std::chrono::nanoseconds thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
}

/// The process's CPU time (user + system) in seconds.
double process_cpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec
         + ru.ru_stime.tv_usec / 1e6;
}

/// Burns `d` of this thread's CPU time.
void burn(std::chrono::nanoseconds d) {
  auto t0 = thread_cpu();
  volatile unsigned sink = 0;
  while (thread_cpu() - t0 < d)
    for (int i = 0; i < 1000; ++i)
      sink = sink + i;
}

/// Where and when each task ran.
class ledger {
public:
  /// Runs one task on the calling (scheduler) thread and books it.
  void run_task() {
    auto start = clock_type::now();
    burn(task_cpu);
    auto end = clock_type::now();
    std::lock_guard<std::mutex> guard{mtx_};
    tasks_.push_back({std::this_thread::get_id(), start, end});
  }

  /// The average number of threads running a task while any ran.
  double speedup() {
    std::lock_guard<std::mutex> guard{mtx_};
    if (tasks_.empty())
      return 0;
    auto first = tasks_.front().start;
    auto last = tasks_.front().end;
    clock_type::duration busy{0};
    for (auto& t : tasks_) {
      first = std::min(first, t.start);
      last = std::max(last, t.end);
      busy += t.end - t.start;
    }
    return std::chrono::duration<double>(busy).count()
           / std::chrono::duration<double>(last - first).count();
  }

  /// Threads that ran a task.
  size_t threads() {
    return per_thread().size();
  }

  /// E.g. "81/79": tasks run by each thread.
  std::string tasks_per_thread() {
    std::string out;
    for (auto& [who, n] : per_thread())
      out += (out.empty() ? "" : "/") + std::to_string(n);
    return out;
  }

  /// How long after `t0` the last thread to take part began its first task.
  double last_joined_ms(clock_type::time_point t0) {
    std::lock_guard<std::mutex> guard{mtx_};
    std::map<std::thread::id, clock_type::time_point> joined;
    for (auto& t : tasks_)
      if (joined.count(t.who) == 0 || t.start < joined[t.who])
        joined[t.who] = t.start;
    auto latest = t0;
    for (auto& [who, when] : joined)
      latest = std::max(latest, when);
    return std::chrono::duration<double, std::milli>(latest - t0).count();
  }

private:
  struct task {
    std::thread::id who;
    clock_type::time_point start;
    clock_type::time_point end;
  };

  std::map<std::thread::id, size_t> per_thread() {
    std::lock_guard<std::mutex> guard{mtx_};
    std::map<std::thread::id, size_t> result;
    for (auto& t : tasks_)
      ++result[t.who];
    return result;
  }

  std::mutex mtx_;
  std::vector<task> tasks_;
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
      book.run_task();
      done.count_down();
    },
    [](const std::string& ping) { return ping; },
  };
}

void report(const char* what, ledger& book, clock_type::time_point t0) {
  MESSAGE(std::string{what} << ": tasks per thread " << book.tasks_per_thread()
                            << ", speed-up " << book.speedup()
                            << "; the last thread joined after "
                            << book.last_joined_ms(t0) << " ms");
}

} // namespace

/// One actor sends a CPU-bound task to each of `fanout_tasks` idle actors
/// on a runtime of `threads` scheduler threads; books where they ran.
void send_fanout(size_t threads, ledger& book) {
  weave::runtime_config cfg;
  cfg.set("scheduler.max-threads", threads);
  weave::runtime rt{std::move(cfg)};
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
  // Let the scheduler go idle, so that the other threads are asleep when
  // the tasks become runnable (the assertions hold either way).
  std::this_thread::sleep_for(idle_wait);
  auto t0 = clock_type::now();
  caf::anon_send(fanout, 1);
  REQUIRE(done.wait());
  report("send fan-out", book, t0);
  for (auto& t : tasks)
    caf::anon_send_exit(t, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(fanout, caf::exit_reason::user_shutdown);
}

TEST_CASE("CPU-bound work an actor sends to other actors runs on every "
          "scheduler thread") {
  ledger book;
  send_fanout(scheduler_threads, book);
  CHECK(book.threads() == scheduler_threads);
  CHECK(book.speedup() >= min_speedup);
}

TEST_CASE("woken scheduler threads wake the next one while work remains") {
  // Only one thread is woken at a time; each that finds work wakes the next,
  // so all of them join (more threads than cores: they still hold tasks at
  // the same time, taking turns on the cores).
  ledger book;
  send_fanout(many_threads, book);
  CHECK(book.threads() == many_threads);
  CHECK(book.speedup() >= min_speedup_many);
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
          book.run_task();
          done.count_down();
          child->quit();
        });
    });
  });
  std::this_thread::sleep_for(idle_wait);
  auto t0 = clock_type::now();
  caf::anon_send(parent, 1);
  REQUIRE(done.wait());
  report("spawn fan-out", book, t0);
  CHECK(book.threads() == scheduler_threads);
  CHECK(book.speedup() >= min_speedup);
  caf::anon_send_exit(parent, caf::exit_reason::user_shutdown);
}

TEST_CASE("after a burst of work the scheduler threads park: an idle runtime "
          "burns no CPU") {
  // A worker that never parks (a lost wake-up protocol that keeps searching,
  // wake-ups that chain forever) would burn whole cores here.
  weave::runtime rt{two_threads()};
  weave::test::latch done{fanout_tasks};
  auto parent = rt.system().spawn([&](caf::event_based_actor* self) {
    self->become([&, self](int) {
      for (size_t i = 0; i < fanout_tasks; ++i)
        self->spawn([&](caf::event_based_actor* child) {
          done.count_down();
          child->quit();
        });
    });
  });
  caf::anon_send(parent, 1);
  REQUIRE(done.wait());
  std::this_thread::sleep_for(idle_wait); // let them finish searching
  auto before = process_cpu();
  auto t0 = clock_type::now();
  std::this_thread::sleep_for(idle_span); // the idle span being measured
  auto share = (process_cpu() - before) / std::chrono::duration<double>(
                                             clock_type::now() - t0)
                                             .count();
  MESSAGE("idle CPU: " << share * 100 << "% of one core");
  CHECK(share < max_idle_cpu_share);
  caf::anon_send_exit(parent, caf::exit_reason::user_shutdown);
}
