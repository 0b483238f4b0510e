#pragma once

// weave's scaling measures: fanout, offload_fanin, submit_mt, channel_mpmc,
// each at every thread count of bench::thread_counts().

#include "bench/bench_util.hpp"
#include "runtime/weave.hpp"

namespace bench {

/// One actor sends a CPU-bound task to each of N actors, on a runtime of T
/// scheduler threads (its own, built from argv); speed-up over T = 1.
void weave_fanout(int argc, char** argv, report& out);

/// T actors each keeping 64 offloads in flight on one pool of T workers.
void weave_offload_fanin(weave::runtime& rt, report& out);

/// T plain threads each doing `submit(fn).get()` on a pool of T workers.
void weave_submit_mt(weave::runtime& rt, report& out);

/// T producer threads -> bounded channel (1024) -> T consumer threads.
void weave_channel_mpmc(weave::runtime& rt, report& out);

} // namespace bench
