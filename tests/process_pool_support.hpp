#pragma once

// Helpers of the process pool tests: a runtime with the middleman, the
// worker programs' paths, a scratch directory, and /proc scans.

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "runtime/weave.hpp"
#include "runtime/process_pool.hpp"

namespace weave::test {

/// The test worker program (a data dependency, relative to the runfiles).
constexpr const char* worker_program = "tests/process_pool_test_worker";
constexpr const char* bad_worker_program = "tests/process_pool_bad_worker";
/// Joins without the pool protocol's line (another weave version).
constexpr const char* old_worker_program = "tests/process_pool_old_worker";

inline runtime_config pool_config() {
  runtime_config cfg;
  enable_process_pools(cfg);
  return cfg;
}

inline process_pool_options pool_options(size_t workers) {
  process_pool_options opts;
  opts.workers = workers;
  opts.program = worker_program;
  return opts;
}

/// A fresh directory for one test's files.
inline std::string scratch_dir() {
  static std::atomic<int> counter{0};
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = std::string{base != nullptr ? base : "/tmp"} + "/pp_"
                    + std::to_string(::getpid()) + "_"
                    + std::to_string(counter++);
  ::mkdir(dir.c_str(), 0755);
  return dir;
}

inline void touch(const std::string& path) {
  std::ofstream{path} << "open\n";
}

/// How many times each tag was written to `log`.
inline std::map<uint64_t, int> executions(const std::string& log) {
  std::map<uint64_t, int> result;
  std::ifstream in{log};
  uint64_t tag = 0;
  while (in >> tag)
    ++result[tag];
  return result;
}

/// Executions per tag, over every worker's `exec.<pid>` file in `dir` (the
/// `tally` job's logs, one per worker process).
inline std::map<uint64_t, int> all_executions(const std::string& dir) {
  std::map<uint64_t, int> result;
  if (auto d = ::opendir(dir.c_str())) {
    while (auto e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.rfind("exec.", 0) != 0)
        continue;
      for (auto& kv : executions(dir + "/" + name))
        result[kv.first] += kv.second;
    }
    ::closedir(d);
  }
  return result;
}

inline size_t lines_in(const std::string& log) {
  size_t n = 0;
  for (auto& kv : executions(log))
    n += static_cast<size_t>(kv.second);
  return n;
}

/// Whether every thread of process `pid` is stopped (state T in
/// /proc/<pid>/task/*/stat); false if it has none or cannot be read.
inline bool all_threads_stopped(int pid) {
  auto task_dir = "/proc/" + std::to_string(pid) + "/task";
  auto dir = ::opendir(task_dir.c_str());
  if (dir == nullptr)
    return false;
  size_t threads = 0;
  size_t stopped = 0;
  while (auto entry = ::readdir(dir)) {
    if (std::atoi(entry->d_name) <= 0)
      continue;
    ++threads;
    std::ifstream stat{task_dir + "/" + entry->d_name + "/stat"};
    std::string text;
    std::getline(stat, text);
    auto close = text.rfind(')');
    if (close != std::string::npos && close + 2 < text.size()
        && (text[close + 2] == 'T' || text[close + 2] == 't'))
      ++stopped;
  }
  ::closedir(dir);
  return threads > 0 && stopped == threads;
}

/// Sends SIGSTOP to `pid` and waits until all its threads have stopped:
/// kill() returns once the signal is queued, and under load the process's
/// threads go on for milliseconds (a job may finish, a result may leave)
/// until one of them takes the signal and stops the rest. False if that
/// did not happen within 10 s.
inline bool freeze(int pid) {
  if (::kill(pid, SIGSTOP) != 0)
    return false;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (!all_threads_stopped(pid)) {
    if (std::chrono::steady_clock::now() >= until)
      return false;
    ::usleep(200); // no notification for a stop we are not the parent of
  }
  return true;
}

/// The pids of this process's children that /proc still lists (running or
/// zombie).
inline std::vector<int> child_pids() {
  std::vector<int> result;
  auto self = ::getpid();
  if (auto dir = ::opendir("/proc")) {
    while (auto entry = ::readdir(dir)) {
      auto pid = std::atoi(entry->d_name);
      if (pid <= 0)
        continue;
      std::ifstream stat{"/proc/" + std::to_string(pid) + "/stat"};
      std::string text;
      std::getline(stat, text);
      auto close = text.rfind(')');
      if (close == std::string::npos)
        continue;
      char state = 0;
      int ppid = 0;
      if (std::sscanf(text.c_str() + close + 1, " %c %d", &state, &ppid) == 2
          && ppid == self)
        result.push_back(pid);
    }
    ::closedir(dir);
  }
  return result;
}

/// The error `f` completes with (none if it completes with a value).
template <class T>
caf::error error_of(future<T>& f) {
  auto res = f.get_result();
  return res ? caf::error{} : res.error();
}

/// True if /proc lists `pid` (alive or a zombie not yet reaped).
inline bool listed(int pid) {
  return ::access(("/proc/" + std::to_string(pid)).c_str(), F_OK) == 0;
}

} // namespace weave::test
