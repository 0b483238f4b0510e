#pragma once

// weave's TCP measures (sizes in bench_util.hpp), both ends on one runtime.

#include "bench/bench_util.hpp"
#include "runtime/runtime.hpp"

namespace bench {

/// tcp_echo_rtt and tcp_throughput: each socket driven by a `tcp_protocol`
/// inside its connection's actor, as asio's handlers and Tokio's tasks own
/// their sockets.
void weave_tcp(weave::runtime& rt, bool rtt, bool throughput, report& out);

/// tcp_echo_rtt_request and tcp_throughput_request: the same with the
/// request API: other actors drive each socket by requests to its
/// connection actor (Tokio's peer: a task owning the socket, driven over
/// channels with a oneshot answer per operation).
void weave_tcp_request(weave::runtime& rt, bool rtt, bool throughput,
                       report& out);

} // namespace bench
