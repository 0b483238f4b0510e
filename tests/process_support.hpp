#pragma once

// Helpers for the process actor's suites: options for `sh -c`, draining a
// stream, and checks that a child is gone (no /proc entry, no zombie).

#include <doctest/doctest.h>

#include <cerrno>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/process_actor.hpp"
#include "tests/test_support.hpp"

namespace weave::test {

/// Options that run `script` with `sh -c`.
inline actors::process_options sh(std::string script) {
  actors::process_options opts;
  opts.argv = {"sh", "-c", std::move(script)};
  return opts;
}

/// Everything `ch` delivers until it closes; fails the test (and returns
/// what it had) if a chunk takes longer than `patience`.
inline std::string drain(channel<std::string>& ch) {
  std::string all;
  for (;;) {
    auto r = ch.get(patience);
    if (r.status == channel_status::closed)
      return all;
    if (!r) {
      FAIL_CHECK("drain: ", to_string(r.status));
      return all;
    }
    all += *r.value;
  }
}

/// True if `pid` has no /proc entry.
inline bool proc_gone(int pid) {
  struct stat st;
  return ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) != 0;
}

/// True if `pid` is not a child of ours left to reap (no zombie).
inline bool not_our_child(int pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) < 0 && errno == ECHILD;
}

} // namespace weave::test
