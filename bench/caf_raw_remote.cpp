// caf_raw's remote measures, written the way a CAF 0.17.6 user would:
// worker processes publish an actor with CAF's middleman (BASP over TCP on
// loopback), the client connects with `middleman().remote_actor` and sends
// requests; throughput keeps a window of requests in flight, spread
// round-robin over the workers. The workers are forked before any actor
// system exists (a fork of a threaded process is unsafe), and end when the
// client closes their control pipe.
#include "bench/caf_raw_remote.hpp"

#include <cstdio>
#include <memory>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "caf/all.hpp"
#include "caf/io/all.hpp"

namespace bench {

namespace {

using namespace sizes;

/// A worker process: publishes the job actor, reports its port, waits for
/// the client to go away.
[[noreturn]] void worker_main(int port_fd, int control_fd) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  {
    caf::actor_system sys{cfg};
    auto job = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
      return {[](int x) { return x + 1; }};
    });
    auto port = sys.middleman().publish(job, 0, "127.0.0.1");
    uint16_t value = port ? *port : 0;
    if (write(port_fd, &value, sizeof value) != sizeof value)
      std::_Exit(1);
    close(port_fd);
    char c;
    while (read(control_fd, &c, 1) > 0) {
    }
    caf::anon_send_exit(job, caf::exit_reason::user_shutdown);
  }
  std::_Exit(0);
}

} // namespace

remote_workers_handle::remote_workers_handle(int n) {
  for (int i = 0; i < n; ++i) {
    int port_pipe[2];
    int control_pipe[2];
    if (pipe(port_pipe) != 0 || pipe(control_pipe) != 0)
      return;
    auto pid = fork();
    if (pid == 0) {
      close(port_pipe[0]);
      close(control_pipe[1]);
      for (auto fd : controls_)
        close(fd);
      worker_main(port_pipe[1], control_pipe[0]);
    }
    close(port_pipe[1]);
    close(control_pipe[0]);
    uint16_t port = 0;
    if (read(port_pipe[0], &port, sizeof port) != sizeof port)
      port = 0;
    close(port_pipe[0]);
    pids_.push_back(pid);
    ports_.push_back(port);
    controls_.push_back(control_pipe[1]);
  }
}

remote_workers_handle::~remote_workers_handle() {
  for (auto fd : controls_)
    close(fd);
  for (auto pid : pids_)
    waitpid(pid, nullptr, 0);
}

void caf_raw_remote(remote_workers_handle& workers, bool rtt, bool throughput,
                    report& out) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  std::vector<caf::actor> remotes;
  for (auto port : workers.ports()) {
    auto handle = sys.middleman().remote_actor("127.0.0.1", port);
    if (!handle) {
      std::fprintf(stderr, "caf_raw: remote_actor: %s\n",
                   sys.render(handle.error()).c_str());
      return;
    }
    remotes.push_back(*handle);
  }
  if (rtt) {
    histogram h;
    h.reserve(remote_rtt_samples);
    caf::scoped_actor self{sys};
    cpu_meter cpu;
    for (int i = 0; i < remote_rtt_warmup + remote_rtt_samples; ++i) {
      auto t0 = clock::now();
      self->request(remotes[0], caf::infinite, i)
        .receive([](int) {}, [](caf::error&) {});
      if (i >= remote_rtt_warmup)
        h.add(clock::now() - t0);
    }
    out.set("remote_rtt", "p50_us", h.percentile_us(50));
    out.set("remote_rtt", "p99_us", h.percentile_us(99));
    out.set("remote_rtt", "cpu_us_per_op",
            cpu.us_per_op(remote_rtt_warmup + remote_rtt_samples));
  }
  if (throughput) {
    for (auto [window, ops, suffix] :
         {std::tuple{remote_window, remote_ops, ""},
          std::tuple{1, remote_ops_window1, "_w1"}}) {
      cpu_meter cpu;
      auto t0 = clock::now();
      caf::scoped_actor self{sys};
      auto driver = sys.spawn([&remotes, window = window, ops = ops](
                                caf::event_based_actor* s) {
        auto sent = std::make_shared<int>(0);
        auto done = std::make_shared<int>(0);
        auto issue = std::make_shared<std::function<void()>>();
        *issue = [=, &remotes]() {
          auto& target = remotes[*sent % remotes.size()];
          ++*sent;
          s->request(target, caf::infinite, *sent).then([=](int) {
            if (++*done == ops) {
              *issue = nullptr;
              s->quit();
            } else if (*sent < ops) {
              (*issue)();
            }
          });
        };
        for (int i = 0; i < window && i < ops; ++i)
          (*issue)();
      });
      self->wait_for(driver);
      auto seconds = seconds_since(t0);
      out.set("remote_throughput", std::string{"ops_per_s"} + suffix,
              ops / seconds);
      out.set("remote_throughput", std::string{"cpu_us_per_op"} + suffix,
              cpu.us_per_op(ops));
    }
  }
}

} // namespace bench
