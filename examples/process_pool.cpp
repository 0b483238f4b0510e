// process_pool: run_in_executor(ProcessPoolExecutor(), fn), tutorial §3.1's
// other executor. A decoder of untrusted input runs in worker processes;
// one input crashes it (a segfault), which costs that one job: the caller
// hears `worker_lost`, the pool replaces the worker, and every other input
// is decoded. Each line shows which process (pid) ran what.
//
// The program runs itself as its workers: the first line of main turns a
// process started by the pool into a worker.
#include <unistd.h>

#include <csignal>
#include <string>
#include <vector>

#include "examples/example.hpp"
#include "runtime/process_pool.hpp"

/// The job, declared once (a header both ends include, in a larger
/// program) and implemented once.
WEAVE_JOB(decode, std::string(int input));

namespace {

/// The input the decoder cannot survive.
constexpr int poisoned_input = 3;

constexpr int inputs = 6;

constexpr size_t workers = 2;

} // namespace

WEAVE_JOB_IMPL(decode, [](int input) -> std::string {
  if (input == poisoned_input)
    std::raise(SIGSEGV); // a bug in a native decoder
  return "decoded by pid " + std::to_string(::getpid());
});

int main(int argc, char** argv) {
  WEAVE_PROCESS_WORKER_MAIN(argc, argv);
  using weave_examples::say;
  weave_examples::take_options(argc, argv);
  weave::runtime_config cfg;
  weave::enable_process_pools(cfg);
  if (auto err = cfg.parse(argc, argv)) {
    std::cerr << argv[0] << ": " << weave::render(err) << std::endl;
    return weave_examples::bad_usage_status;
  }
  weave::runtime rt{std::move(cfg)};
  weave_examples::section("3.1", "run_in_executor with a process pool");
  weave::process_pool_options opts;
  opts.workers = workers;
  // One job per worker at a time: a crash costs exactly the job it ran.
  opts.capacity = 1;
  weave::process_pool pool{rt, opts};
  say("main process pid ", ::getpid(), "; ", pool.size(), " workers");
  std::vector<weave::future<std::string>> results;
  for (int i = 1; i <= inputs; ++i)
    results.push_back(pool.submit(decode(i)));
  int ok = 0;
  int lost = 0;
  for (int i = 1; i <= inputs; ++i) {
    auto res = results[i - 1].get_result();
    if (res) {
      ++ok;
      say("input ", i, ": ", *res);
    } else {
      ++lost;
      say("input ", i, ": ", weave::render(res.error()));
      say("input ", i, ": ",
          weave::maybe_executed(res.error()) ? "it may have run"
                                             : "it never ran",
          " (", weave::is(res.error(), weave::errc::worker_lost)
                  ? "worker_lost"
                  : "other error",
          ")");
    }
  }
  auto st = pool.stats();
  say(inputs, " inputs: ", ok, " decoded, ", lost, " lost to the crash");
  say("pool: ", st.workers_lost, " worker lost and replaced, ", pool.size(),
      " workers");
  return 0;
}
