#include "runtime/internal/run_queue_meter.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

namespace weave::internal {

namespace {

/// Reads a small /proc file from its start; false when it cannot.
bool read_all(int fd, char* buf, size_t size) {
  if (fd < 0)
    return false;
  auto n = ::pread(fd, buf, size - 1, 0);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  return true;
}

int open_task_file(int32_t tid, const char* name) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/task/%d/%s",
                static_cast<int>(tid), name);
  return ::open(path, O_RDONLY | O_CLOEXEC);
}

void close_fd(int& fd) {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}

} // namespace

run_queue_meter::run_queue_meter(size_t threads)
  : threads_(threads), stats_(new thread_stat[threads]) {
  // nop
}

run_queue_meter::~run_queue_meter() {
  for (size_t i = 0; i < threads_; ++i) {
    close_fd(stats_[i].schedstat_fd);
    close_fd(stats_[i].stat_fd);
  }
}

void run_queue_meter::open_files(thread_stat& t, int32_t tid) {
  close_fd(t.schedstat_fd);
  close_fd(t.stat_fd);
  t = thread_stat{};
  t.tid = tid;
  t.schedstat_fd = open_task_file(tid, "schedstat");
  t.stat_fd = open_task_file(tid, "stat");
}

void run_queue_meter::sample(size_t i, int32_t tid, int64_t now_ns) {
  if (i >= threads_ || tid == 0)
    return;
  auto& t = stats_[i];
  if (t.tid != tid)
    open_files(t, tid);
  // "<run ns> <run-queue wait ns> <timeslices>\n"
  char buf[96];
  if (!read_all(t.schedstat_fd, buf, sizeof(buf)))
    return;
  char* end = nullptr;
  auto run = std::strtoull(buf, &end, 10);
  if (end == buf)
    return;
  auto delay = std::strtoull(end, nullptr, 10);
  if (!t.sampled) {
    t.sampled = true;
    t.previous_delay_ns = delay;
    t.quiet_since_ns = now_ns;
  } else {
    t.previous_delay_ns = t.delay_ns;
    if (run != t.run_ns || delay != t.delay_ns)
      t.quiet_since_ns = now_ns; // it had a core since the last sample
  }
  t.run_ns = run;
  t.delay_ns = delay;
}

void run_queue_meter::begin_span(size_t i) {
  if (i >= threads_)
    return;
  auto& t = stats_[i];
  t.span_base_ns = t.previous_delay_ns;
}

bool run_queue_meter::runnable(thread_stat& t) {
  // "<tid> (<name>) <state> ...": the name may hold spaces and parentheses,
  // the state follows the last ')'.
  char buf[512];
  if (!read_all(t.stat_fd, buf, sizeof(buf)))
    return false;
  auto close = std::strrchr(buf, ')');
  return close != nullptr && close[1] == ' ' && close[2] == 'R';
}

int64_t run_queue_meter::waited_ns(size_t i, int64_t now_ns) {
  if (i >= threads_)
    return 0;
  auto& t = stats_[i];
  if (!t.sampled)
    return 0;
  // Waits the kernel has counted (each ended when the thread got a core)...
  int64_t waited = t.delay_ns > t.span_base_ns
                     ? static_cast<int64_t>(t.delay_ns - t.span_base_ns)
                     : 0;
  // ...and the one in progress: runnable, and no core since `quiet_since`.
  if (now_ns > t.quiet_since_ns && runnable(t))
    waited += now_ns - t.quiet_since_ns;
  return waited;
}

} // namespace weave::internal
