#include "tests/process_pool_jobs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace {

int32_t hold_impl(uint64_t tag, const std::string& log,
                  const std::string& gate) {
  auto line = std::to_string(tag) + "\n";
  auto fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0)
    throw std::runtime_error("cannot open " + log);
  auto written = ::write(fd, line.data(), line.size());
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size()))
    throw std::runtime_error("cannot write " + log);
  // Creates the condition "the job is running" until the test opens the
  // gate; bounded so that a broken test cannot leave it forever.
  auto until = std::chrono::steady_clock::now()
               + std::chrono::milliseconds{weave::test::hold_limit_ms};
  while (!gate.empty() && ::access(gate.c_str(), F_OK) != 0
         && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  return static_cast<int32_t>(::getpid());
}

int32_t tally_impl(uint64_t tag, const std::string& dir, bool fail) {
  // One file per worker process, opened by the first job (a worker runs
  // the jobs of one test only). O_APPEND writes of a line are atomic.
  static const int fd = [&] {
    auto path = dir + "/exec." + std::to_string(::getpid());
    return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  }();
  if (fd < 0)
    throw std::runtime_error("cannot open the execution log in " + dir);
  auto line = std::to_string(tag) + "\n";
  if (::write(fd, line.data(), line.size())
      != static_cast<ssize_t>(line.size()))
    throw std::runtime_error("cannot write the execution log");
  if (fail)
    throw std::runtime_error("tally " + std::to_string(tag) + " failed");
  return static_cast<int32_t>(::getpid());
}

} // namespace

WEAVE_JOB_IMPL(square, [](int x) { return x * x; });

WEAVE_JOB_IMPL(whoami, [] { return static_cast<int32_t>(::getpid()); });

WEAVE_JOB_IMPL(fail_with, [](std::string message) -> int {
  throw std::runtime_error(message);
});

WEAVE_JOB_IMPL(crash, [](int kind) -> int {
  switch (kind) {
    case weave::test::crash_segfault:
      std::raise(SIGSEGV);
      break;
    case weave::test::crash_abort:
      std::abort();
    default:
      std::_Exit(weave::test::crash_exit_status);
  }
  return 0;
});

WEAVE_JOB_IMPL(hold, hold_impl);

WEAVE_JOB_IMPL(hold_idempotent, hold_impl);

WEAVE_JOB_IMPL(tally, tally_impl);

WEAVE_JOB_IMPL(tally_idempotent, tally_impl);
