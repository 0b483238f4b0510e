#pragma once

// weave's remote measures: registered jobs on a process_pool of worker
// processes (this program, re-executed) over CAF's middleman on loopback.

#include "bench/bench_util.hpp"

namespace bench {

/// remote_rtt (one job at a time from an actor, p50/p99) and
/// remote_throughput (64 and 1 in flight from one actor).
void weave_remote(bool rtt, bool throughput, report& out);

} // namespace bench
