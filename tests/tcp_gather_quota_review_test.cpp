// Review of `auto` under a CPU quota and a cpuset (io_unit's parse_stat,
// find_cpu_quota, read_cgroup_usage_ns, quota_left_x100): cases that
// failed on d0c84e2, and cases that held up (two of their checks failed,
// marked there).

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "actors/internal/io_unit.hpp"
#include "tests/cgroup_support.hpp"

using weave::actors::internal::io_unit;
using weave::test::fake_cgroups;

// --- Failed on d0c84e2 -----------------------------------------------------

TEST_CASE("review: a quota whose hundredths overflow 64 bits is not a "
          "hundredth of a core") {
  // 184467440737095517 * 100 wraps to 84: the quota came out as 0.01
  // core (the smallest, so it won), and `auto` gathered for good.
  const std::string huge = "184467440737095517";
  fake_cgroups v2{"v2huge"};
  v2.put("/a/cpu.max", huge + " 100000\n");
  auto q2 = io_unit::find_cpu_quota("0::/a\n", v2.root);
  CHECK_MESSAGE((q2.cores_x100 == 0
                 || q2.cores_x100 >= io_unit::min_free_cores_x100),
                q2.cores_x100);
  fake_cgroups v1{"v1huge"};
  v1.put("/cpu,cpuacct/a/cpu.cfs_quota_us", huge + "\n");
  v1.put("/cpu,cpuacct/a/cpu.cfs_period_us", "100000\n");
  auto q1 = io_unit::find_cpu_quota("4:cpu,cpuacct:/a\n", v1.root);
  CHECK_MESSAGE((q1.cores_x100 == 0
                 || q1.cores_x100 >= io_unit::min_free_cores_x100),
                q1.cores_x100);
  // A real huge-but-valid one (the kernel's largest, 2^44 us): many cores.
  fake_cgroups big{"v2big"};
  big.put("/a/cpu.max", "17592186044415 100000\n");
  CHECK(io_unit::find_cpu_quota("0::/a\n", big.root).cores_x100
        == 17592186044415ull * 100 / 100000);
}

TEST_CASE("review: a /proc/stat cut off in the middle of a wanted cpu line "
          "(a full buffer) says nothing, rather than a smaller number") {
  uint64_t busy = 0;
  uint64_t total = 0;
  // cpu1's steal "12" cut to "1": eight numbers parse, the sum is wrong.
  const char* cut = "cpu  100 0 50 800 50 0 0 0 0 0\n"
                    "cpu0 10 0 5 80 5 0 0 0 0 0\n"
                    "cpu1 90 0 45 20 5 0 0 1";
  std::vector<bool> only(4, false);
  only[1] = true;
  bool ok = io_unit::parse_stat(cut, &only, busy, total);
  CAPTURE(busy);
  CAPTURE(total);
  CHECK_FALSE(ok);
  // The same line, whole: 147 busy of 172 (steal is busy).
  const char* whole = "cpu  100 0 50 800 50 0 0 0 0 0\n"
                      "cpu0 10 0 5 80 5 0 0 0 0 0\n"
                      "cpu1 90 0 45 20 5 0 0 12 0 0\n"
                      "intr 1\n";
  REQUIRE(io_unit::parse_stat(whole, &only, busy, total));
  CHECK(busy == 147);
  CHECK(total == 172);
}

TEST_CASE("review: cgroup v1 with cpu co-mounted with more controllers: the "
          "mount is named as /proc/self/cgroup lists them") {
  fake_cgroups fs{"v1multi"};
  fs.put("/cpuset,cpu,cpuacct/cpu.cfs_period_us", "100000\n"); // the root
  fs.put("/cpuset,cpu,cpuacct/a/cpu.cfs_quota_us", "150000\n");
  fs.put("/cpuset,cpu,cpuacct/a/cpu.cfs_period_us", "100000\n");
  fs.put("/cpuset,cpu,cpuacct/a/cpuacct.usage", "77\n");
  auto q = io_unit::find_cpu_quota("3:cpuset,cpu,cpuacct:/a\n0::/\n",
                                   fs.root);
  CHECK(q.cores_x100 == 150);
  CHECK(q.usage_path == fs.root + "/cpuset,cpu,cpuacct/a/cpuacct.usage");
}

// --- Held up on d0c84e2 ----------------------------------------------------

TEST_CASE("review: cgroup paths with doubled and trailing slashes, the root, "
          "a removed cgroup (\" (deleted)\"), CRLF and odd lines") {
  fake_cgroups fs{"paths"};
  fs.put("/a/b/cpu.max", "250000 100000\n");
  fs.put("/a/b/cpu.stat", "usage_usec 9\n");
  fs.put("/a/cpu.max", "300000 100000\n");
  for (const char* text :
       {"0::/a/b\n", "0::/a/b/\n", "0::/a//b\n", "0::/a/b//\n", "0::a/b\n",
        "0::/a/b", "junk\n0::/a/b\nmore:junk\n"}) {
    auto q = io_unit::find_cpu_quota(text, fs.root);
    CHECK_MESSAGE(q.cores_x100 == 250, text);
    uint64_t ns = 0;
    CHECK_MESSAGE(io_unit::read_cgroup_usage_ns(q.usage_path, ns), text);
    CHECK(ns == 9000);
  }
  // A removed cgroup (v2 adds " (deleted)"), CRLF: the parent's.
  CHECK(io_unit::find_cpu_quota("0::/a/b (deleted)\n", fs.root).cores_x100
        == 300);
  CHECK(io_unit::find_cpu_quota("0::/a/b\r\n", fs.root).cores_x100 == 300);
  // The root, and a path above the namespace's root: nothing (no escape
  // that finds a quota).
  CHECK(io_unit::find_cpu_quota("0::/\n", fs.root).cores_x100 == 0);
  fake_cgroups root{"rootq"};
  root.put("/cpu.max", "50000 100000\n");
  CHECK(io_unit::find_cpu_quota("0::/\n", root.root).cores_x100 == 50);
  CHECK(io_unit::find_cpu_quota("0::/x/y/z\n", root.root).cores_x100 == 50);
}

TEST_CASE("review: hybrid v1 + v2 (0:: exists, cpu in v1), v1 symlinks cpu "
          "and cpuacct -> cpu,cpuacct, a quota at the container's root") {
  fake_cgroups fs{"hybrid"};
  std::filesystem::create_directories(fs.root + "/unified/user.slice");
  fs.put("/cpu,cpuacct/docker/x/cpu.cfs_quota_us", "120000\n");
  fs.put("/cpu,cpuacct/docker/x/cpu.cfs_period_us", "100000\n");
  fs.put("/cpu,cpuacct/docker/x/cpuacct.usage", "5\n");
  fs.put("/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  fs.put("/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  std::filesystem::create_directory_symlink("cpu,cpuacct", fs.root + "/cpu");
  std::filesystem::create_directory_symlink("cpu,cpuacct",
                                            fs.root + "/cpuacct");
  auto q = io_unit::find_cpu_quota(
    "12:pids:/docker/x\n4:cpu,cpuacct:/docker/x\n0::/user.slice\n", fs.root);
  CHECK(q.cores_x100 == 120);
  uint64_t ns = 0;
  REQUIRE(io_unit::read_cgroup_usage_ns(q.usage_path, ns));
  CHECK(ns == 5);
  // cpu alone in its line but cpuacct reached by the symlink.
  auto q2 = io_unit::find_cpu_quota("4:cpu:/docker/x\n", fs.root);
  CHECK(q2.cores_x100 == 120);
  REQUIRE(io_unit::read_cgroup_usage_ns(q2.usage_path, ns));
  CHECK(ns == 5);

  // A container's own cgroup at the mount's root, usage found there too.
  fake_cgroups own{"ownroot"};
  own.put("/cpu,cpuacct/cpu.cfs_quota_us", "80000\n");
  own.put("/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  own.put("/cpu,cpuacct/cpuacct.usage", "31\n");
  auto q3 = io_unit::find_cpu_quota("4:cpu,cpuacct:/docker/abc\n", own.root);
  CHECK(q3.cores_x100 == 80);
  REQUIRE(io_unit::read_cgroup_usage_ns(q3.usage_path, ns));
  CHECK(ns == 31);
}

TEST_CASE("review: v2 nested quotas, the smallest wins with its own "
          "cgroup's cpu.stat; odd cpu.max and cpu.stat texts") {
  fake_cgroups fs{"nested"};
  fs.put("/p/cpu.max", "100000 100000\n");
  fs.put("/p/cpu.stat", "usage_usec 1\n");
  fs.put("/p/c/cpu.max", "300000 100000\n");
  fs.put("/p/c/cpu.stat", "usage_usec 2\n");
  fs.put("/p/c/d/cpu.max", "max 100000\n");
  auto q = io_unit::find_cpu_quota("0::/p/c/d\n", fs.root);
  CHECK(q.cores_x100 == 100);
  CHECK(q.usage_path == fs.root + "/p/cpu.stat");
  // Numbers without a newline, blanks (failed on d0c84e2: the period was
  // read from the first blank on, that is the quota again: 100), a period
  // of 1 us.
  fake_cgroups odd{"oddmax"};
  odd.put("/a/cpu.max", "  200000   100000");
  CHECK(io_unit::find_cpu_quota("0::/a\n", odd.root).cores_x100 == 200);
  odd.put("/b/cpu.max", "1000 1");
  CHECK(io_unit::find_cpu_quota("0::/b\n", odd.root).cores_x100 == 100000);
  odd.put("/c/cpu.max", "-5 100000\n");
  CHECK(io_unit::find_cpu_quota("0::/c\n", odd.root).cores_x100 == 0);
  odd.put("/d/cpu.max", "");
  CHECK(io_unit::find_cpu_quota("0::/d\n", odd.root).cores_x100 == 0);
  // usage_usec last, without a newline; or only inside another name.
  uint64_t ns = 0;
  odd.put("/s1/cpu.stat", "user_usec 1\nusage_usec 42");
  REQUIRE(io_unit::read_cgroup_usage_ns(odd.root + "/s1/cpu.stat", ns));
  CHECK(ns == 42000);
  odd.put("/s2/cpu.stat", "xusage_usec 42\n");
  CHECK_FALSE(io_unit::read_cgroup_usage_ns(odd.root + "/s2/cpu.stat", ns));
  odd.put("/s3/cpu.stat", "usage_usec \n");
  CHECK_FALSE(io_unit::read_cgroup_usage_ns(odd.root + "/s3/cpu.stat", ns));
  // No slash at all in the path: not a crash.
  CHECK_FALSE(io_unit::read_cgroup_usage_ns("cpu.stat", ns));
}

TEST_CASE("review: /proc/stat oddities: cores beyond the mask, absurd core "
          "numbers, cpu lines after other lines, a line of a cpu with too "
          "few numbers, nothing after the last cpu line") {
  uint64_t busy = 0;
  uint64_t total = 0;
  std::vector<bool> only(1024, false);
  only[0] = true;
  const char* text = "cpu  1 1 1 1 1 1 1 1 0 0\n"
                     "cpu0 1 0 1 5 1 0 0 0 0 0\n"
                     "cpu5000 1 0 1 5 1 0 0 0 0 0\n"
                     "cpu99999999999999999999999 1 0 1 5 1 0 0 0 0 0\n"
                     "cpufreq 9 9 9\n";
  REQUIRE(io_unit::parse_stat(text, &only, busy, total));
  CHECK(busy == 2);
  CHECK(total == 8);
  // A cpu line after "intr" does not count (they come first).
  REQUIRE(io_unit::parse_stat("cpu0 1 0 1 5 1 0 0 0\nintr 1\ncpu0 5 5 5 5 "
                              "5 5 5 5\n",
                              &only, busy, total));
  CHECK(total == 8);
  // Too few numbers on a wanted line: not numbers from the next line
  // (failed on d0c84e2: strtoull skips the newline).
  CHECK_FALSE(io_unit::parse_stat("cpu0 1 2 3\n4 5 6 7 8\n", &only, busy,
                                  total));
}

TEST_CASE("review: what a quota leaves: window 0, others far beyond the "
          "window, a quota of exactly 1.5 cores") {
  constexpr uint64_t ms = 1'000'000;
  CHECK(io_unit::quota_left_x100(150, 0, UINT64_MAX) == 150);
  CHECK(io_unit::quota_left_x100(150, 100 * ms, UINT64_MAX / 1000) == 0);
  // 1500m (a common Kubernetes limit) alone in its cgroup: spreads; 1 ms
  // of others' time in 100 ms tips it (no hysteresis).
  CHECK_FALSE(io_unit::quota_left_x100(150, 100 * ms, 0)
              < io_unit::min_free_cores_x100);
  CHECK(io_unit::quota_left_x100(150, 100 * ms, 1 * ms)
        < io_unit::min_free_cores_x100);
}
