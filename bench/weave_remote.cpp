// weave's remote measures (see weave_remote.hpp), the same job and sizes as
// caf_raw's (caf_raw_remote.cpp) and Python's ProcessPoolExecutor.
#include "bench/weave_remote.hpp"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>

#include "runtime/process_pool.hpp"
#include "runtime/weave.hpp"

WEAVE_JOB(bench_inc, int(int x));
WEAVE_JOB_IMPL(bench_inc, [](int x) { return x + 1; });

namespace bench {

namespace {

using namespace sizes;

/// Runs `ops` jobs from one actor, at most `window` in flight; `on_done`
/// sees each job's round trip.
void drive(weave::runtime& rt, weave::process_pool& pool, int window, int ops,
           std::function<void(int, clock::duration)> on_done) {
  caf::scoped_actor self{rt.system()};
  auto driver = rt.system().spawn([&pool, window, ops, on_done](
                                    caf::event_based_actor* s) {
    auto sent = std::make_shared<int>(0);
    auto done = std::make_shared<int>(0);
    auto issue = std::make_shared<std::function<void()>>();
    *issue = [=, &pool]() {
      auto i = (*sent)++;
      auto t0 = clock::now();
      weave::offload(s, pool, bench_inc(i))
        .then(
          [=](int) {
            on_done(i, clock::now() - t0);
            if (++*done == ops) {
              *issue = nullptr;
              s->quit();
            } else if (*sent < ops) {
              (*issue)();
            }
          },
          [=](caf::error&) {
            *issue = nullptr;
            s->quit();
          });
    };
    for (int i = 0; i < window && i < ops; ++i)
      (*issue)();
  });
  self->wait_for(driver);
}

} // namespace

void weave_remote(bool rtt, bool throughput, report& out) {
  weave::runtime_config cfg;
  weave::enable_process_pools(cfg);
  weave::runtime rt{std::move(cfg)};
  weave::process_pool_options opts;
  opts.workers = static_cast<size_t>(remote_workers);
  // Where this program runs through a loader (the device bundle's
  // `ld-linux ... --library-path`), /proc/self/exe is the loader: the
  // bundle names a wrapper that starts this program again.
  if (auto program = std::getenv("WEAVE_BENCH_WORKER_PROGRAM"))
    opts.program = program;
  // Ablations of the pool's defaults.
  if (auto capacity = std::getenv("WEAVE_BENCH_CAPACITY"); capacity && *capacity)
    opts.capacity = std::strtoul(capacity, nullptr, 10);
  weave::process_pool pool{rt, std::move(opts)};
  if (rtt) {
    histogram h;
    h.reserve(remote_rtt_samples);
    cpu_meter cpu;
    drive(rt, pool, 1, remote_rtt_warmup + remote_rtt_samples,
          [&h](int i, clock::duration d) {
            if (i >= remote_rtt_warmup)
              h.add(d);
          });
    out.set("remote_rtt", "p50_us", h.percentile_us(50));
    out.set("remote_rtt", "p99_us", h.percentile_us(99));
    out.set("remote_rtt", "cpu_us_per_op",
            cpu.us_per_op(remote_rtt_warmup + remote_rtt_samples));
  }
  if (throughput) {
    for (auto [window, ops, suffix] :
         {std::tuple{remote_window, remote_ops, ""},
          std::tuple{1, remote_ops_window1, "_w1"}}) {
      cpu_meter cpu;
      auto t0 = clock::now();
      drive(rt, pool, window, ops, [](int, clock::duration) {});
      out.set("remote_throughput", std::string{"ops_per_s"} + suffix,
              ops / seconds_since(t0));
      out.set("remote_throughput", std::string{"cpu_us_per_op"} + suffix,
              cpu.us_per_op(ops));
      // WEAVE_POOL_STATS=1: how the pool batched (cumulative counts).
      if (auto s = std::getenv("WEAVE_POOL_STATS"); s && *s == '1') {
        auto st = pool.stats();
        std::fprintf(stderr,
                     "pool stats after window %d: %zu jobs, %zu run messages, "
                     "%zu result messages\n",
                     window, st.completed, st.run_messages,
                     st.result_messages);
      }
    }
  }
}

} // namespace bench
