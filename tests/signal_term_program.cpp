// A program for signal_actor_test: starts a runtime with the signal actor,
// keeps a pool job running (it honours its stop token) and a loop, prints
// "ready" on stdout, and waits. SIGTERM must run the phased shutdown, print
// its report (stderr), and let main return 0.
#include <cstdio>
#include <future>

#include "actors/signal_actor.hpp"
#include "runtime/weave.hpp"

int main(int argc, char** argv) {
  std::promise<int> stopped_by;
  auto stopped = stopped_by.get_future();
  {
    weave::runtime rt{argc, argv};
    weave::actors::signal_options opts;
    opts.on_shutdown = [&](int signo, const weave::shutdown_report&) {
      stopped_by.set_value(signo);
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
    int signo = stopped.get();
    std::fprintf(stderr, "main: shut down by %s\n",
                 weave::actors::signal_name(signo).c_str());
  }
  return 0;
}
