#pragma once

// Helpers of the process pool tests: a runtime with the middleman, the
// worker programs' paths, a scratch directory, and /proc scans.

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
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
