// The Prometheus text of `to_prometheus`: it passes a strict parser
// (tests/prometheus_parser.hpp), which itself refuses malformed text; names
// follow the conventions; label values are escaped; histograms are
// cumulative with +Inf equal to _count. Also the fixed histogram buckets.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/internal/metrics_clock.hpp"
#include "runtime/metrics.hpp"
#include "runtime/prometheus.hpp"
#include "runtime/weave.hpp"
#include "tests/prometheus_parser.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::duration_histogram;
using weave::test::parse_prometheus;
using weave::test::prom_exposition;

namespace {

/// A snapshot with one of everything, made by hand.
weave::metrics_snapshot sample_snapshot() {
  weave::metrics_snapshot s;
  weave::pool_metrics p;
  p.name = "io";
  p.max_workers = 4;
  p.workers = 3;
  p.busy = 2;
  p.queued = 7;
  p.completed = 11;
  p.failed = 3;
  p.stopped = 1;
  p.cancelled = 5;
  p.quarantined = 1;
  p.quarantined_total = 2;
  p.threads = 4;
  p.queue_wait.buckets[0] = 4;
  p.queue_wait.buckets[3] = 6;
  p.queue_wait.buckets[duration_histogram::finite_buckets] = 5;
  p.queue_wait.sum_ns = 1'500'000'123;
  p.run_time.buckets[10] = 15;
  p.run_time.sum_ns = 42;
  p.busy_ratio = 0.25;
  s.pools.push_back(p);
  p.name = "io"; // a second pool of the same name
  s.pools.push_back(p);
  p.name = "we\"ird\\name\nwith newline";
  s.pools.push_back(p);
  weave::scheduler_worker_metrics w;
  w.index = 0;
  w.resumes = 100;
  w.busy_ns = 2'000'000;
  w.parks = 3;
  w.steals = 1;
  w.slow_handlers = 1;
  s.scheduler.push_back(w);
  w.index = 1;
  s.scheduler.push_back(w);
  weave::channel_metrics c;
  c.name = "jobs";
  c.capacity = 8;
  c.depth = 8;
  c.high_water = 8;
  c.blocked_producers = 2;
  c.puts = 20;
  c.gets = 12;
  c.drops = 0;
  s.channels.push_back(c);
  weave::loop_metrics l;
  l.name = "ticker";
  l.own_thread = true;
  l.lag.buckets[2] = 9;
  l.lag.sum_ns = 3'000;
  l.posted = 9;
  s.loops.push_back(l);
  s.threads.scheduler = 2;
  s.threads.pool_workers = 12;
  s.threads.loops = 1;
  s.threads.running = 20;
  s.threads.started = 30;
  s.threads.ended = 10;
  s.slow_handlers = 2;
  return s;
}

std::string parse_error(const std::string& text) {
  prom_exposition e;
  return parse_prometheus(text, e);
}

} // namespace

TEST_CASE("a duration falls into the bucket whose bounds enclose it: "
          "(bound(i-1), bound(i)], 100 ns doubling, overflow above") {
  CHECK(duration_histogram::bucket_of(0) == 0);
  CHECK(duration_histogram::bucket_of(100) == 0);
  CHECK(duration_histogram::bucket_of(101) == 1);
  CHECK(duration_histogram::bucket_of(200) == 1);
  CHECK(duration_histogram::bucket_of(201) == 2);
  for (size_t i = 1; i < duration_histogram::finite_buckets; ++i) {
    auto b = duration_histogram::upper_bound_ns(i);
    CHECK(duration_histogram::bucket_of(b) == i);
    CHECK(duration_histogram::bucket_of(b + 1) == i + 1);
    CHECK(duration_histogram::bucket_of(b - 1) == i);
  }
  CHECK(duration_histogram::bucket_of(UINT64_MAX)
        == duration_histogram::finite_buckets);
  CHECK(duration_histogram::upper_bound_ns(30) == 107'374'182'400);
}

TEST_CASE("a histogram's count, quantile bound and sum add up") {
  duration_histogram h;
  CHECK(h.count() == 0);
  CHECK(h.quantile_bound_ns(0.5) == 0);
  h.buckets[0] = 50;
  h.buckets[5] = 49;
  h.buckets[duration_histogram::finite_buckets] = 1;
  CHECK(h.count() == 100);
  CHECK(h.quantile_bound_ns(0.5) == 100);
  CHECK(h.quantile_bound_ns(0.99) == duration_histogram::upper_bound_ns(5));
  CHECK(h.quantile_bound_ns(1.0) == UINT64_MAX);
  auto g = h;
  g += h;
  CHECK(g.count() == 200);
}

TEST_CASE("the metrics clock measures a sleep within a few percent of "
          "steady_clock") {
  weave::runtime rt; // calibrates the clock
  namespace mc = weave::internal::metrics_clock;
  auto s0 = std::chrono::steady_clock::now();
  auto t0 = mc::now();
  std::this_thread::sleep_for(20ms); // creates the interval measured
  auto t1 = mc::now();
  auto s1 = std::chrono::steady_clock::now();
  auto steady = std::chrono::duration_cast<std::chrono::nanoseconds>(s1 - s0)
                  .count();
  auto ours = static_cast<double>(mc::elapsed_ns(t0, t1));
  // Both readings lie inside the steady interval; preemption between the
  // paired reads makes ours shorter, never longer (beyond calibration).
  CHECK(ours <= steady * 1.01);
  CHECK(ours >= 20e6 * 0.99);
  CHECK(mc::elapsed_ns(t1, t0) == 0);
}

TEST_CASE("to_prometheus output passes the strict parser, with HELP and "
          "TYPE per family, _total counters and escaped labels") {
  auto text = weave::to_prometheus(sample_snapshot());
  prom_exposition e;
  auto err = parse_prometheus(text, e);
  INFO(text);
  REQUIRE(err == "");
  CHECK(text.find("\n\n") == std::string::npos);
  for (auto& f : e.families) {
    CHECK(f.name.rfind("weave_", 0) == 0);
    CHECK_FALSE(f.help.empty());
    if (f.type == "counter")
      CHECK(f.name.size() > 6);
    if (f.type == "counter")
      CHECK(f.name.compare(f.name.size() - 6, 6, "_total") == 0);
    else
      CHECK(f.name.find("_total") == std::string::npos);
  }
  CHECK(e.value("weave_pool_jobs_completed_total", {{"pool", "io"}}) == 11);
  CHECK(e.value("weave_pool_jobs_completed_total", {{"pool", "io#2"}}) == 11);
  CHECK(e.value("weave_pool_jobs_failed_total",
                {{"pool", "we\"ird\\name\nwith newline"}})
        == 3);
  CHECK(text.find("pool=\"we\\\"ird\\\\name\\nwith newline\"")
        != std::string::npos);
  CHECK(e.value("weave_pool_queued_jobs", {{"pool", "io"}}) == 7);
  CHECK(e.value("weave_pool_busy_ratio", {{"pool", "io"}}) == 0.25);
  CHECK(e.value("weave_pool_queue_wait_seconds_count", {{"pool", "io"}})
        == 15);
  CHECK(e.value("weave_pool_queue_wait_seconds_bucket",
                {{"pool", "io"}, {"le", "0.0000001"}})
        == 4);
  CHECK(e.value("weave_pool_queue_wait_seconds_bucket",
                {{"pool", "io"}, {"le", "0.0000008"}})
        == 10);
  CHECK(e.value("weave_pool_queue_wait_seconds_bucket",
                {{"pool", "io"}, {"le", "+Inf"}})
        == 15);
  CHECK(text.find("weave_pool_queue_wait_seconds_sum{pool=\"io\"} "
                  "1.500000123\n")
        != std::string::npos);
  CHECK(e.value("weave_scheduler_busy_seconds_total", {{"worker", "1"}})
        == 0.002);
  CHECK(e.value("weave_channel_blocked_producers", {{"channel", "jobs"}})
        == 2);
  CHECK(e.value("weave_loop_tasks_run_total", {{"loop", "ticker"}}) == 9);
  CHECK(e.value("weave_threads", {{"role", "pool_worker"}}) == 12);
  CHECK(e.value("weave_slow_handlers_total") == 2);
  CHECK(e.family("weave_pool_run_seconds")->type == "histogram");
}

TEST_CASE("an empty snapshot renders only the runtime-wide families, and "
          "still parses") {
  auto text = weave::to_prometheus(weave::metrics_snapshot{});
  prom_exposition e;
  REQUIRE(parse_prometheus(text, e) == "");
  CHECK(e.family("weave_pool_workers") == nullptr);
  CHECK(e.family("weave_loop_lag_seconds") == nullptr);
  CHECK(e.family("weave_threads") != nullptr);
}

TEST_CASE("the strict parser refuses malformed text") {
  // Each case names what is wrong; the parser must say so.
  std::vector<std::pair<std::string, std::string>> bad{
    {"# TYPE a counter\na 1", "newline"},
    {"a 1\n", "without a TYPE"},
    {"# TYPE a counter\n# TYPE a counter\na 1\n", "second TYPE"},
    {"# TYPE a counter\n# HELP a x\n# HELP a y\na 1\n", "second HELP"},
    {"# TYPE a counter\na 1\n# HELP a late\n", "after the family"},
    {"# TYPE a wibble\na 1\n", "unknown TYPE"},
    {"# TYPE 1a counter\n1a 1\n", "bad metric name"},
    {"# TYPE a gauge\na{1x=\"v\"} 1\n", "bad label name"},
    {"# TYPE a gauge\na{__x=\"v\"} 1\n", "bad label name"},
    {"# TYPE a gauge\na{x=\"v\\t\"} 1\n", "bad escape"},
    {"# TYPE a gauge\na{x=\"v} 1\n", "unterminated"},
    {"# TYPE a gauge\na{x=\"v\",x=\"w\"} 1\n", "twice"},
    {"# TYPE a gauge\na{x=\"v\"} one\n", "bad value"},
    {"# TYPE a gauge\na 1 12.5\n", "timestamp"},
    {"# TYPE a gauge\na 1\na 2\n", "series given twice"},
    {"# TYPE a counter\na -1\n", "negative"},
    {"# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"1\"} 1\n",
     "group had ended"},
    {"# TYPE a gauge\na 1\r\n", "carriage return"},
    {"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
     "h_sum 3\nh_count 3\n",
     "differs from _count"},
    {"# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
     "h_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
     "decrease"},
    {"# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
     "h_bucket{le=\"+Inf\"} 1\nh_sum 3\nh_count 1\n",
     "not increasing"},
    {"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 3\nh_count 1\n",
     "no +Inf"},
    {"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", "lacks"},
    {"# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n", "le missing"},
    {"# TYPE h histogram\nh_bucket{le=\"x\"} 1\nh_bucket{le=\"+Inf\"} 1\n"
     "h_sum 1\nh_count 1\n",
     "bad le"},
  };
  for (auto& [text, what] : bad) {
    auto err = parse_error(text);
    INFO("text: " << text << " error: " << err);
    CHECK(err.find(what) != std::string::npos);
  }
  // And accepts what the format allows.
  CHECK(parse_error("") == "");
  CHECK(parse_error("# a comment\n# TYPE a gauge\na{x=\"\\\\\\\"\\n\",} 1.5e-3 "
                    "1700000000000\n")
        == "");
  CHECK(parse_error("# TYPE a gauge\na NaN\n") == "");
}
