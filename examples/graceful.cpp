// Graceful shutdown on SIGTERM: a program at work — a pool job that honours
// its stop token, a loop, an actor fed by a periodic timer — gets SIGTERM
// (here it sends it to itself, as `kill <pid>` or a container runtime
// would) and the signal actor runs the runtime's phased shutdown, prints
// its report, and lets `main` return 0. (No tutorial section: this is
// asyncio's `loop.add_signal_handler(SIGTERM, ...)` around `asyncio.run`.)
// The tour runs it last: it ends the tour's runtime.
#include <condition_variable>
#include <csignal>
#include <future>
#include <mutex>
#include <optional>
#include <iostream>
#include <unistd.h>

#include "actors/signal_actor.hpp"
#include "actors/timer.hpp"
#include "examples/example.hpp"

namespace weave_examples {

namespace {

using tick_atom = caf::atom_constant<caf::atom("tick")>;

/// Ticks before the worker sends SIGTERM to its own process.
constexpr int ticks_before_sigterm = 3;

/// The worker's timer period (a tenth with `--fast`).
constexpr auto tick_period = std::chrono::milliseconds{500};

} // namespace

/// Runs the example; the runtime is shut down when it returns. Returns the
/// shutdown's report.
weave::shutdown_report graceful_example(weave::runtime& rt,
                                        const options& opts) {
  {
    std::lock_guard<std::mutex> guard{print_mutex()};
    std::cout << "\n== graceful: SIGTERM runs the phased shutdown ==" << std::endl;
  }
  // The report, handed over under a lock and waited for on a condition
  // variable rather than a std::future: the kernel gives SIGTERM to the
  // main thread first, and under ThreadSanitizer a signal waits until its
  // thread makes a call TSan knows (a future's raw futex wait is not one).
  std::mutex stopped_mtx;
  std::condition_variable stopped_cv;
  std::optional<weave::shutdown_report> stopped; // under `stopped_mtx`
  weave::actors::signal_options sig;
  sig.print = [](const std::string& text) { say(text); };
  sig.on_shutdown = [&](int signo, const weave::shutdown_report& r) {
    say("shut down by ", weave::actors::signal_name(signo));
    // Notified under the lock: the waiter may return at once.
    std::lock_guard<std::mutex> guard{stopped_mtx};
    stopped = r;
    stopped_cv.notify_all();
  };
  weave::actors::spawn_signal_actor(rt, std::move(sig));

  // Work: a long job that stops when asked, and a loop.
  weave::blocking_pool pool{rt, 1, "work"};
  std::promise<void> running;
  auto job = pool.submit(weave::labeled("serve", [&](weave::stop_token st) {
    running.set_value();
    say("job: serving until asked to stop");
    weave::sleep_for(st, std::chrono::hours{1});
    say("job: asked to stop (", weave::render(weave::make_error(st.cause())),
        "), leaving");
  }));
  running.get_future().wait();
  weave::loop lp{rt, "events"};

  // An actor fed by a periodic timer; on its third tick it sends SIGTERM
  // to its own process and ends. It holds its own handle until then (a
  // timer does not keep its target alive), so none is left to outlive the
  // runtime. Spawned from the loop: a plain thread that spawns an actor
  // itself would hold up the end of the shutdown while it waits (see
  // runtime.hpp).
  auto self_ref = std::make_shared<caf::actor>();
  auto spawn_worker = [self_ref](caf::event_based_actor* self) {
    auto count = std::make_shared<int>(0);
    return caf::behavior{[self, count, self_ref](tick_atom) {
      say("worker: tick ", ++*count);
      if (*count == ticks_before_sigterm) {
        say("worker: sending SIGTERM to this process");
        ::kill(::getpid(), SIGTERM);
        self->quit();
        *self_ref = nullptr;
      }
    }};
  };
  weave::actors::timer beat;
  {
    auto worker = lp.submit([&](weave::loop_context& cx) {
                      return cx.self()->spawn(spawn_worker);
                    })
                    .get();
    *self_ref = worker;
    beat = weave::actors::send_every(rt, worker,
                                     opts.scaled(tick_period),
                                     caf::make_message(tick_atom::value));
  }

  // This thread waits for the signal actor's shutdown. If it spawned
  // actors itself (the tour's main thread did, in earlier sections), CAF
  // pins the actor system to it and the shutdown could not finish while it
  // waits: let go of it (see runtime/this_thread.hpp).
  weave::release_this_thread();
  say("main: released this thread; waiting for the shutdown");
  weave::shutdown_report r;
  {
    std::unique_lock<std::mutex> guard{stopped_mtx};
    stopped_cv.wait(guard, [&] { return stopped.has_value(); });
    r = *stopped;
  }
  {
    std::lock_guard<std::mutex> guard{print_mutex()};
    std::cout << "report: " << r.jobs_abandoned << " jobs abandoned, "
              << r.threads_abandoned << " threads abandoned; phases:";
    for (auto& [name, took] : r.phases)
      std::cout << " " << name;
    std::cout << std::endl;
    using state = weave::actors::timer_stats::state_type;
    auto s = beat.stats();
    std::cout << "timer: " << s.fired << " ticks sent, then "
              << (s.state == state::stopped     ? "stopped (its target ended)"
                  : s.state == state::shut_down ? "stopped (shutdown)"
                                                : "still armed?")
              << std::endl;
  }
  return r;
}

} // namespace weave_examples

#ifndef WEAVE_TOUR
int main(int argc, char** argv) {
  auto opts = weave_examples::take_options(argc, argv);
  int status = 0;
  auto rt = weave_examples::make_runtime(argc, argv, status);
  if (!rt)
    return status;
  weave_examples::graceful_example(*rt, opts);
  std::cout << "exit code 0" << std::endl;
  return 0;
}
#endif
