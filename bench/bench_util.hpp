#pragma once

// Shared by the C++ benchmarks: latency histograms, JSON output, CPU and
// heap readings. Each benchmark binary prints one JSON object:
//   {"system": "...", "results": {"<id>": {"<metric>": number, ...}, ...}}
// Scaling measures run at several thread counts T and name their metrics
// "<metric>@<T>" (e.g. "ops_per_s@4"). Every measure also reports
// "cpu_us_per_op": the process's user + system CPU time over its operations,
// so that a design that spins shows what it burns.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <malloc.h>
#include <map>
#include <ctime>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <vector>

namespace bench {

using clock = std::chrono::steady_clock;

/// Latency samples in nanoseconds; percentiles by sorting (exact).
class histogram {
public:
  void reserve(size_t n) {
    samples_.reserve(n);
  }

  void add(clock::duration d) {
    samples_.push_back(
      std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  }

  double percentile_us(double p) {
    if (samples_.empty())
      return 0;
    std::sort(samples_.begin(), samples_.end());
    auto idx = static_cast<size_t>(p / 100.0 * (samples_.size() - 1));
    return samples_[idx] / 1000.0;
  }

private:
  std::vector<long long> samples_;
};

/// Collects results and prints them as JSON.
class report {
public:
  explicit report(std::string system) : system_(std::move(system)) {
  }

  void set(const std::string& id, const std::string& metric, double value) {
    results_[id][metric] = value;
    std::fprintf(stderr, "%s %s %s = %.3f\n", system_.c_str(), id.c_str(),
                 metric.c_str(), value);
  }

  /// A scaling figure, at `threads` threads.
  void set_at(const std::string& id, const std::string& metric, size_t threads,
              double value) {
    set(id, metric + "@" + std::to_string(threads), value);
  }

  void print() const {
    std::printf("{\"system\": \"%s\", \"results\": {", system_.c_str());
    bool first_id = true;
    for (auto& [id, metrics] : results_) {
      std::printf("%s\"%s\": {", first_id ? "" : ", ", id.c_str());
      first_id = false;
      bool first = true;
      for (auto& [m, v] : metrics) {
        std::printf("%s\"%s\": %.6g", first ? "" : ", ", m.c_str(), v);
        first = false;
      }
      std::printf("}");
    }
    std::printf("}}\n");
  }

private:
  std::string system_;
  std::map<std::string, std::map<std::string, double>> results_;
};

/// Process CPU time (user + system).
inline double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec
         + ru.ru_stime.tv_usec / 1e6;
}

/// Process CPU time spent from its construction, per operation.
class cpu_meter {
public:
  cpu_meter() : c0_(cpu_seconds()) {
  }

  /// Microseconds of CPU per operation.
  double us_per_op(double ops) const {
    return ops > 0 ? (cpu_seconds() - c0_) * 1e6 / ops : 0;
  }

private:
  double c0_;
};

/// The calling thread's CPU time in seconds.
inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/// Burns `seconds` of the calling thread's CPU (a CPU-bound task).
inline void burn_cpu(double seconds) {
  auto t0 = thread_cpu_seconds();
  volatile unsigned sink = 0;
  while (thread_cpu_seconds() - t0 < seconds)
    for (int i = 0; i < 1000; ++i)
      sink = sink + i;
}

/// Bytes currently allocated on the heap.
inline size_t heap_in_use() {
  return mallinfo2().uordblks;
}

/// An integer from the environment, or `fallback`.
inline int env_int(const char* name, int fallback) {
  auto value = std::getenv(name);
  return value != nullptr ? std::atoi(value) : fallback;
}

// The sizes of the measures, one definition for every C++ system (tokio's
// and python_bench.py's mirror them). BENCH_WARMUP / BENCH_SAMPLES override
// the round-trip counts (bench/callgrind uses them).
namespace sizes {
inline const int rtt_warmup = env_int("BENCH_WARMUP", 2000);
inline const int rtt_samples = env_int("BENCH_SAMPLES", 20000);
constexpr int throughput_in_flight = 64;
constexpr int throughput_ops = 400000;
constexpr long channel_items = 10000000;
constexpr size_t channel_capacity = 1024;
constexpr int sleepers = 10000;
constexpr size_t sleeper_pool = 64;
constexpr auto idle_period = std::chrono::seconds{5};
constexpr int queued_jobs = 100000;
// Scaling measures (totals over all threads, whatever T is).
constexpr int fanout_tasks = 400;
constexpr double fanout_task_cpu_s = 0.002;
constexpr int fanin_ops = 400000;
constexpr int submit_mt_ops = 200000;
constexpr long mpmc_items = 4000000;
// Remote measures: jobs to worker processes over loopback (CAF's middleman
// for weave and caf_raw, ProcessPoolExecutor for Python).
constexpr int remote_workers = 2;
constexpr int remote_rtt_warmup = 500;
constexpr int remote_rtt_samples = 5000;
constexpr int remote_window = 64;
constexpr int remote_ops = 40000;
constexpr int remote_ops_window1 = 5000;
// TCP on loopback: 64-byte round trips (rtt_warmup + rtt_samples of them),
// and a stream of 64 KiB writes, tcp_stream_bytes in all, to a reader that
// discards them.
constexpr size_t tcp_message = 64;
constexpr size_t tcp_chunk = 64 * 1024;
constexpr size_t tcp_stream_bytes = size_t{1} << 30;
} // namespace sizes

/// Cores of this machine.
inline size_t cores() {
  return std::max(1u, std::thread::hardware_concurrency());
}

/// The thread counts of the scaling measures: 1, 2, 4, ... up to the cores,
/// and the cores themselves; BENCH_THREADS="1,3,8" overrides.
inline std::vector<size_t> thread_counts() {
  std::vector<size_t> result;
  if (auto list = std::getenv("BENCH_THREADS")) {
    for (char* p = list; *p != 0;) {
      char* end = nullptr;
      auto t = std::strtoul(p, &end, 10);
      if (t > 0)
        result.push_back(t);
      p = *end == ',' ? end + 1 : end;
      if (end == p && *p != 0)
        ++p;
    }
    if (!result.empty())
      return result;
  }
  for (size_t t = 1; t < cores(); t *= 2)
    result.push_back(t);
  result.push_back(cores());
  return result;
}

inline double seconds_since(clock::time_point t0) {
  return std::chrono::duration<double>(clock::now() - t0).count();
}

/// Selects benchmarks by id from argv (all if none given).
inline bool wanted(int argc, char** argv, const char* id) {
  bool any = false;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-')
      continue;
    any = true;
    if (std::string{argv[i]} == id)
      return true;
  }
  return !any;
}

} // namespace bench
