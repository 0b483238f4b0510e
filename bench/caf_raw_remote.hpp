#pragma once

// caf_raw's remote measures: requests to actors in worker processes over
// CAF's middleman on loopback (see caf_raw_remote.cpp).

#include <cstdint>
#include <sys/types.h>
#include <vector>

#include "bench/bench_util.hpp"

namespace bench {

/// Worker processes forked by the client, each publishing one job actor on
/// a loopback port. Create before any actor system exists; the destructor
/// ends and reaps them.
class remote_workers_handle {
public:
  explicit remote_workers_handle(int n);
  ~remote_workers_handle();
  remote_workers_handle(const remote_workers_handle&) = delete;
  remote_workers_handle& operator=(const remote_workers_handle&) = delete;

  const std::vector<uint16_t>& ports() const {
    return ports_;
  }

private:
  std::vector<pid_t> pids_;
  std::vector<uint16_t> ports_;
  std::vector<int> controls_;
};

/// remote_rtt (window 1, p50/p99) and remote_throughput (window 64 and 1).
void caf_raw_remote(remote_workers_handle& workers, bool rtt, bool throughput,
                    report& out);

} // namespace bench
