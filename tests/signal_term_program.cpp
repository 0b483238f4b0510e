// A program for signal_actor_test: starts a runtime with the signal actor,
// keeps a pool job running (it honours its stop token) and a loop, prints
// "ready" on stdout, and waits. SIGTERM must run the phased shutdown, print
// its report (stderr), and let main return 0.
//
// main waits on a condition variable, not on a std::future: the kernel gives
// a process-directed signal to the main thread first, and ThreadSanitizer
// delivers an asynchronous signal only when the thread that received it is
// in a call TSan knows blocks (pthread_cond_wait is one; the raw futex
// syscall behind std::future::get is not), so a future would hold SIGTERM
// back for ever under TSan.
#include <condition_variable>
#include <cstdio>
#include <future>
#include <mutex>

#include "actors/signal_actor.hpp"
#include "runtime/weave.hpp"

int main(int argc, char** argv) {
  std::mutex mtx;
  std::condition_variable cv;
  int stopped_by = 0; // under `mtx`
  {
    weave::runtime rt{argc, argv};
    weave::actors::signal_options opts;
    opts.on_shutdown = [&](int signo, const weave::shutdown_report&) {
      // Notified under the lock: main may return (and destroy `cv`) as
      // soon as it sees `stopped_by`.
      std::lock_guard<std::mutex> guard{mtx};
      stopped_by = signo;
      cv.notify_all();
    };
    weave::actors::spawn_signal_actor(rt, std::move(opts));
    weave::blocking_pool pool{rt, 1, "work"};
    std::promise<void> running;
    auto job = pool.submit(weave::labeled("serve", [&](weave::stop_token st) {
      running.set_value();
      weave::sleep_for(st, std::chrono::hours{1}); // until asked to stop
    }));
    running.get_future().wait();
    weave::loop lp{rt, "events"};
    std::printf("ready\n");
    std::fflush(stdout);
    int signo = 0;
    {
      std::unique_lock<std::mutex> guard{mtx};
      cv.wait(guard, [&] { return stopped_by != 0; });
      signo = stopped_by;
    }
    std::fprintf(stderr, "main: shut down by %s\n",
                 weave::actors::signal_name(signo).c_str());
  }
  return 0;
}
