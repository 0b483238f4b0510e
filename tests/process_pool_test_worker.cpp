// The worker program of the process pool tests: the shared test jobs, and
// a main that only runs as a pool worker.
//
// For the restart tests, each start appends "<pid> <CLOCK_MONOTONIC ns>" to
// $TEST_TMPDIR/<worker_start_log>, and while $TEST_TMPDIR/<crash_at_start>
// exists the worker exits with `crash_at_start_status` before it connects.

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "runtime/process_pool.hpp"
#include "tests/process_pool_jobs.hpp"

namespace {

void note_start(const std::string& dir) {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  auto ns = static_cast<long long>(now.tv_sec) * 1000000000LL + now.tv_nsec;
  auto line = std::to_string(::getpid()) + " " + std::to_string(ns) + "\n";
  auto path = dir + "/" + weave::test::worker_start_log;
  auto fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    [[maybe_unused]] auto n = ::write(fd, line.data(), line.size());
    ::close(fd);
  }
}

} // namespace

int main(int argc, char** argv) {
  if (weave::is_worker_process(argc, argv)) {
    if (auto dir = std::getenv("TEST_TMPDIR")) {
      note_start(dir);
      auto crash = std::string{dir} + "/" + weave::test::crash_at_start;
      if (::access(crash.c_str(), F_OK) == 0)
        return weave::test::crash_at_start_status;
    }
  }
  return weave::run_worker_process(argc, argv);
}
