#pragma once

// Shared by the C++ benchmarks: latency histograms, JSON output, CPU and
// heap readings. Each benchmark binary prints one JSON object:
//   {"system": "...", "results": {"<id>": {"<metric>": number, ...}, ...}}

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <malloc.h>
#include <map>
#include <string>
#include <sys/resource.h>
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
} // namespace sizes

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
