#pragma once

/// `to_prometheus`: renders a `metrics_snapshot` (metrics.hpp) in the
/// Prometheus text exposition format, version 0.0.4 — what a `/metrics`
/// endpoint serves, with the content type `text/plain; version=0.0.4`.
///
///     std::cout << weave::to_prometheus(rt.metrics());
///
/// Every metric family opens with one `# HELP` and one `# TYPE` line and
/// its samples follow as one group. Names are `weave_<part>_<what>`:
/// counters end in `_total` (`weave_pool_jobs_completed_total{pool="io"}`),
/// durations are in seconds (`weave_pool_run_seconds`), histograms have
/// cumulative `_bucket{le="..."}` samples ending with `le="+Inf"`, then
/// `_sum` and `_count`. Pools, channels and loops are labelled by name
/// (`pool`, `channel`, `loop`), scheduler threads by index (`worker`),
/// threads by `role`. Label values are escaped (`\\`, `\"`, `\n`). Names
/// need not be unique in weave; where two share one, the later ones get
/// `#2`, `#3`, ... appended, so every series is unique. Families without
/// samples (no loops, say) are left out. A snapshot with nothing in it
/// renders the runtime-wide families only.
///
/// Thread-safety: a pure function of its argument.

#include <string>

#include "runtime/metrics.hpp"

namespace weave {

/// The content type of `to_prometheus`'s text.
inline constexpr const char* prometheus_content_type
  = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `snapshot` in the Prometheus text format (see above).
std::string to_prometheus(const metrics_snapshot& snapshot);

} // namespace weave
