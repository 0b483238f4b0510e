#include "runtime/internal/machine_load.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace weave::internal {

namespace {

int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

/// When the verdict is stale (steady clock, ns); 0: never read.
std::atomic<int64_t> stale_at{0};
std::atomic<bool> verdict{true};

/// The runnable count now, or -1 if /proc/loadavg cannot be read.
long read_runnable() noexcept {
  int fd = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  char buf[128];
  auto n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  return runnable_from_loadavg(buf);
}

} // namespace

long runnable_from_loadavg(const char* text) noexcept {
  // "0.52 0.58 0.59 3/467 12345": the runnable count is the fourth field.
  const char* p = text;
  for (int field = 0; field < 3; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr)
      return -1;
    ++p;
  }
  char* end = nullptr;
  auto runnable = std::strtol(p, &end, 10);
  if (end == p || *end != '/' || runnable < 0)
    return -1;
  return runnable;
}

bool spinning_pays() noexcept {
  auto now = now_ns();
  auto due = stale_at.load(std::memory_order_relaxed);
  if (now < due)
    return verdict.load(std::memory_order_relaxed);
  // One caller refreshes; the others use the old verdict meanwhile.
  auto next = now + std::chrono::nanoseconds{refresh_period}.count();
  if (!stale_at.compare_exchange_strong(due, next, std::memory_order_relaxed))
    return verdict.load(std::memory_order_relaxed);
  static const long cores = std::max(1u, std::thread::hardware_concurrency());
  auto runnable = read_runnable();
  bool pays = runnable < 0 || runnable <= cores;
  verdict.store(pays, std::memory_order_relaxed);
  return pays;
}

} // namespace weave::internal
