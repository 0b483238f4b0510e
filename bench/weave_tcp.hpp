#pragma once

// weave's TCP measures: tcp_echo_rtt and tcp_throughput (sizes in
// bench_util.hpp), both ends actors on one runtime.

#include "bench/bench_util.hpp"
#include "runtime/runtime.hpp"

namespace bench {

void weave_tcp(weave::runtime& rt, bool rtt, bool throughput, report& out);

/// tcp_echo_rtt_protocol and tcp_throughput_protocol: the same measures
/// with `tcp_protocol`s (the echo and the stream inside the connections'
/// actors).
void weave_tcp_protocol(weave::runtime& rt, bool rtt, bool throughput,
                        report& out);

} // namespace bench
