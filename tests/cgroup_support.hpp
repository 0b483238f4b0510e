#pragma once

// Fake cgroup trees for the tests of `auto`'s quota reading
// (actors/internal/io_unit.hpp: `find_cpu_quota`).

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <unistd.h>

namespace weave::test {

/// A directory tree under $TEST_TMPDIR standing for /sys/fs/cgroup.
struct fake_cgroups {
  std::string root;

  explicit fake_cgroups(const char* name) {
    const char* base = std::getenv("TEST_TMPDIR");
    root = std::string{base != nullptr ? base : "/tmp"} + "/cgroups_" + name
           + "_" + std::to_string(::getpid());
    std::filesystem::remove_all(root);
    std::filesystem::create_directories(root);
  }
  ~fake_cgroups() {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }
  fake_cgroups(const fake_cgroups&) = delete;
  fake_cgroups& operator=(const fake_cgroups&) = delete;

  /// Writes `text` to `path` (under the root), making its directories.
  void put(const std::string& path, const std::string& text) const {
    auto full = std::filesystem::path{root + path};
    std::filesystem::create_directories(full.parent_path());
    std::ofstream{full} << text;
  }
};

} // namespace weave::test
