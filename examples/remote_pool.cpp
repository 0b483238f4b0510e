// remote_pool: the same jobs on workers on other hosts (here two worker
// processes on loopback, started by this program). One worker is killed
// mid-run: the kill costs exactly the jobs that worker held (answered at
// once with `worker_lost`, marked "maybe executed" or "not started"); every
// other job completes on the other worker. Each line shows which worker
// (pid) ran what.
//
// The program runs itself as its workers: the first line of main turns a
// process started with --weave-worker-listen=HOST:PORT into a worker.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "examples/example.hpp"
#include "runtime/remote_pool.hpp"

/// The job, declared once (a header both ends include, in a larger
/// program) and implemented once.
WEAVE_JOB(render_tile, std::string(int tile));

namespace {

constexpr int tiles = 12;

/// How long rendering one tile takes (creates "jobs in flight").
constexpr auto render_time = std::chrono::milliseconds{30};

/// Both ends share it: a worker with another one is refused.
constexpr const char* app_id_text = "weave-example";

/// Results seen before the first worker is killed.
constexpr int kill_after = 3;

/// A worker process of this program, listening on 127.0.0.1.
struct worker {
  pid_t pid = 0;
  std::string address;
};

worker start_worker() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return {};
  std::string self = "/proc/self/exe";
  std::string flag = "--weave-worker-listen=127.0.0.1:0";
  std::string threads = "--weave-worker-threads=1";
  std::string capacity = "--weave-worker-capacity=3";
  std::string app_id = std::string{"--weave-app-id="} + app_id_text;
  char* argv[] = {self.data(),     flag.data(),   threads.data(),
                  capacity.data(), app_id.data(), nullptr};
  auto pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL); // never outlives this program
    ::dup2(fds[1], STDOUT_FILENO);
    ::execv(argv[0], argv);
    ::_exit(127);
  }
  ::close(fds[1]);
  // It prints "weave worker listening on 127.0.0.1:PORT pid PID".
  std::string line;
  char ch = 0;
  while (::read(fds[0], &ch, 1) == 1 && ch != '\n')
    line += ch;
  ::close(fds[0]);
  auto at = line.find("on ");
  auto end = line.find(" pid");
  if (at == std::string::npos || end == std::string::npos)
    return {pid, {}};
  return {pid, line.substr(at + 3, end - at - 3)};
}

void reap(pid_t pid, int sig) {
  ::kill(pid, sig);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

} // namespace

WEAVE_JOB_IMPL(render_tile, [](int tile) -> std::string {
  std::this_thread::sleep_for(render_time);
  return "tile " + std::to_string(tile) + " rendered by pid "
         + std::to_string(::getpid());
});

int main(int argc, char** argv) {
  WEAVE_PROCESS_WORKER_MAIN(argc, argv);
  using weave_examples::say;
  weave_examples::take_options(argc, argv);
  weave::runtime_config cfg;
  weave::enable_remote_pools(cfg, app_id_text);
  if (auto err = cfg.parse(argc, argv)) {
    std::cerr << argv[0] << ": " << weave::render(err) << std::endl;
    return weave_examples::bad_usage_status;
  }
  weave::runtime rt{std::move(cfg)};
  weave_examples::section("remote", "a remote pool, one worker killed");
  auto a = start_worker();
  auto b = start_worker();
  if (a.address.empty() || b.address.empty()) {
    say("could not start the workers");
    return 1;
  }
  say("worker A: pid ", a.pid, " on ", a.address);
  say("worker B: pid ", b.pid, " on ", b.address);
  int held_at_kill = 0;
  int ok = 0;
  int lost = 0;
  {
    weave::remote_pool pool{rt, {{a.address, b.address}}};
    std::vector<weave::future<std::string>> results;
    for (int i = 1; i <= tiles; ++i)
      results.push_back(pool.submit(render_tile(i)));
    for (int i = 1; i <= tiles; ++i) {
      if (i == kill_after + 1) {
        // Frozen first, so that what A holds cannot change, then killed.
        // kill() only queues SIGSTOP; waitpid(WUNTRACED) returns once all
        // of A's threads have stopped.
        ::kill(a.pid, SIGSTOP);
        int stop_status = 0;
        ::waitpid(a.pid, &stop_status, WUNTRACED);
        held_at_kill = static_cast<int>(pool.nodes()[0].held);
        say("kill -9 worker A (pid ", a.pid, "), holding ", held_at_kill,
            " jobs");
        reap(a.pid, SIGKILL);
      }
      auto res = results[i - 1].get_result();
      if (res) {
        ++ok;
        say("tile ", i, ": ", *res);
      } else {
        ++lost;
        say("tile ", i, ": lost, ",
            weave::maybe_executed(res.error()) ? "it may have run"
                                               : "it never ran",
            " (", weave::render(res.error()), ")");
      }
    }
    auto nodes = pool.nodes();
    say("worker A: ", nodes[0].connected ? "connected" : "down", ", ",
        nodes[0].completed, " jobs done; worker B: ", nodes[1].completed,
        " jobs done");
  }
  say(tiles, " tiles: ", ok, " rendered, ", lost, " lost");
  say(lost == held_at_kill ? "the kill cost exactly the jobs worker A held"
                           : "the kill cost other jobs too");
  reap(b.pid, SIGTERM);
  return 0;
}
