#include "runtime/prometheus.hpp"

#include <cstdio>
#include <functional>
#include <set>
#include <utility>
#include <vector>

namespace weave {

namespace {

constexpr uint64_t ns_per_second = 1'000'000'000;

/// `ns` in seconds, exact, without trailing zeros ("0.0000001", "12.5").
std::string seconds_text(uint64_t ns) {
  auto text = std::to_string(ns / ns_per_second);
  auto frac = ns % ns_per_second;
  if (frac == 0)
    return text;
  char digits[10];
  std::snprintf(digits, sizeof(digits), "%09llu",
                static_cast<unsigned long long>(frac));
  std::string f{digits};
  while (!f.empty() && f.back() == '0')
    f.pop_back();
  return text + "." + f;
}

std::string ratio_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", x);
  return buf;
}

/// Escapes a label value: backslash, double quote and newline.
void append_escaped(std::string& out, const std::string& value) {
  for (auto c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

/// Unique label values for `names`: a name already taken gets "#2", "#3",
/// ... appended (the first free one).
std::vector<std::string> unique_labels(const std::vector<std::string>& names) {
  std::set<std::string> taken;
  std::vector<std::string> result;
  for (auto& n : names) {
    auto label = n;
    for (size_t k = 2; taken.count(label) != 0; ++k)
      label = n + "#" + std::to_string(k);
    taken.insert(label);
    result.push_back(std::move(label));
  }
  return result;
}

using label = std::pair<const char*, std::string>;

class writer {
public:
  /// Opens a family; `samples` writes them (and nothing is written if it
  /// writes none).
  void family(const char* name, const char* type, const char* help,
              const std::function<void()>& samples) {
    auto mark = out_.size();
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help; // weave's own text: no backslash, no newline
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
    auto header_end = out_.size();
    samples();
    if (out_.size() == header_end)
      out_.resize(mark);
  }

  void sample(const char* name, const char* suffix,
              const std::vector<label>& labels, const std::string& value) {
    out_ += name;
    out_ += suffix;
    if (!labels.empty()) {
      out_ += '{';
      bool first = true;
      for (auto& [key, val] : labels) {
        if (!first)
          out_ += ',';
        first = false;
        out_ += key;
        out_ += "=\"";
        append_escaped(out_, val);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }

  void histogram(const char* name, std::vector<label> labels,
                 const duration_histogram& h) {
    uint64_t cumulative = 0;
    labels.emplace_back("le", "");
    for (size_t i = 0; i < duration_histogram::finite_buckets; ++i) {
      cumulative += h.buckets[i];
      labels.back().second
        = seconds_text(duration_histogram::upper_bound_ns(i));
      sample(name, "_bucket", labels, std::to_string(cumulative));
    }
    cumulative += h.buckets[duration_histogram::finite_buckets];
    labels.back().second = "+Inf";
    sample(name, "_bucket", labels, std::to_string(cumulative));
    labels.pop_back();
    sample(name, "_sum", labels, seconds_text(h.sum_ns));
    sample(name, "_count", labels, std::to_string(cumulative));
  }

  std::string take() {
    return std::move(out_);
  }

private:
  std::string out_;
};

template <class T>
std::vector<std::string> labels_of(const std::vector<T>& xs) {
  std::vector<std::string> names;
  for (auto& x : xs)
    names.push_back(x.name);
  return unique_labels(names);
}

/// One family with a sample per element of `xs`.
template <class T, class F>
void per_item(writer& w, const char* name, const char* type, const char* help,
              const char* key, const std::vector<T>& xs,
              const std::vector<std::string>& labels, F value) {
  w.family(name, type, help, [&] {
    for (size_t i = 0; i < xs.size(); ++i)
      w.sample(name, "", {{key, labels[i]}}, value(xs[i]));
  });
}

template <class T, class F>
void per_item_histogram(writer& w, const char* name, const char* help,
                        const char* key, const std::vector<T>& xs,
                        const std::vector<std::string>& labels, F get) {
  w.family(name, "histogram", help, [&] {
    for (size_t i = 0; i < xs.size(); ++i)
      w.histogram(name, {{key, labels[i]}}, get(xs[i]));
  });
}

std::string num(uint64_t x) {
  return std::to_string(x);
}

void write_pools(writer& w, const std::vector<pool_metrics>& ps) {
  auto ls = labels_of(ps);
  auto gauge = [&](const char* name, const char* help, auto get) {
    per_item(w, name, "gauge", help, "pool", ps, ls,
             [&](const pool_metrics& p) { return num(get(p)); });
  };
  auto counter = [&](const char* name, const char* help, auto get) {
    per_item(w, name, "counter", help, "pool", ps, ls,
             [&](const pool_metrics& p) { return num(get(p)); });
  };
  gauge("weave_pool_max_workers", "Most workers the pool may run.",
        [](auto& p) { return p.max_workers; });
  gauge("weave_pool_workers", "Workers started and not quarantined.",
        [](auto& p) { return p.workers; });
  gauge("weave_pool_busy_workers", "Workers running a job now.",
        [](auto& p) { return p.busy; });
  gauge("weave_pool_queued_jobs", "Jobs waiting for a worker now.",
        [](auto& p) { return p.queued; });
  gauge("weave_pool_threads",
        "Worker threads alive now, quarantined ones included.",
        [](auto& p) { return p.threads; });
  gauge("weave_pool_quarantined_workers",
        "Workers quarantined now (each runs a job that ignored its stop).",
        [](auto& p) { return p.quarantined; });
  counter("weave_pool_jobs_completed_total",
          "Jobs that ran and returned a value.",
          [](auto& p) { return p.completed; });
  counter("weave_pool_jobs_failed_total", "Jobs that ran and threw.",
          [](auto& p) { return p.failed; });
  counter("weave_pool_jobs_stopped_total",
          "Jobs that ran and were asked to stop meanwhile.",
          [](auto& p) { return p.stopped; });
  counter("weave_pool_jobs_cancelled_total",
          "Jobs that never ran: cancelled, timed out or shut down.",
          [](auto& p) { return p.cancelled; });
  counter("weave_pool_workers_quarantined_total",
          "Workers quarantined since the pool started.",
          [](auto& p) { return p.quarantined_total; });
  per_item(w, "weave_pool_busy_ratio", "gauge",
           "Share of the pool's capacity its jobs used since it started.",
           "pool", ps, ls,
           [](const pool_metrics& p) { return ratio_text(p.busy_ratio); });
  per_item_histogram(w, "weave_pool_queue_wait_seconds",
                     "Time jobs waited in the queue before they started.",
                     "pool", ps, ls,
                     [](const pool_metrics& p) -> auto& {
                       return p.queue_wait;
                     });
  per_item_histogram(w, "weave_pool_run_seconds",
                     "Time jobs ran, from start to end.", "pool", ps, ls,
                     [](const pool_metrics& p) -> auto& { return p.run_time; });
}

void write_scheduler(writer& w,
                     const std::vector<scheduler_worker_metrics>& ws) {
  std::vector<std::string> ls;
  for (auto& x : ws)
    ls.push_back(std::to_string(x.index));
  auto counter = [&](const char* name, const char* help, auto get) {
    per_item(w, name, "counter", help, "worker", ws, ls, get);
  };
  counter("weave_scheduler_resumes_total",
          "Turns the scheduler thread gave to an actor.",
          [](auto& x) { return num(x.resumes); });
  counter("weave_scheduler_busy_seconds_total",
          "Time the scheduler thread spent inside actors' turns.",
          [](auto& x) { return seconds_text(x.busy_ns); });
  counter("weave_scheduler_parks_total",
          "Times the scheduler thread ran out of work and parked.",
          [](auto& x) { return num(x.parks); });
  counter("weave_scheduler_steals_total",
          "Times the scheduler thread took work queued on another.",
          [](auto& x) { return num(x.steals); });
  counter("weave_scheduler_slow_handlers_total",
          "Turns reported as too long by the blocking detector.",
          [](auto& x) { return num(x.slow_handlers); });
}

/// The TCP I/O thread (`metrics_snapshot::tcp_io`): runtime-wide, zero
/// until a TCP actor is used. Its slow handlers and the workers' add up to
/// `weave_slow_handlers_total`.
void write_tcp_io(writer& w, const tcp_io_metrics& t) {
  w.family("weave_tcp_io_turns_total", "counter",
           "Turns the TCP I/O thread (weave-tcp) gave to an actor.", [&] {
             w.sample("weave_tcp_io_turns_total", "", {}, num(t.turns));
           });
  w.family("weave_tcp_io_busy_seconds_total", "counter",
           "Time the TCP I/O thread spent inside actors' turns.", [&] {
             w.sample("weave_tcp_io_busy_seconds_total", "", {},
                      seconds_text(t.busy_ns));
           });
  w.family("weave_tcp_io_slow_handlers_total", "counter",
           "Turns on the TCP I/O thread reported as too long by the "
           "blocking detector.",
           [&] {
             w.sample("weave_tcp_io_slow_handlers_total", "", {},
                      num(t.slow_handlers));
           });
  w.family("weave_tcp_io_direct_turns_total", "counter",
           "Turns the TCP I/O thread started from a socket's readiness "
           "without a message (the socket's actor was idle).",
           [&] {
             w.sample("weave_tcp_io_direct_turns_total", "", {},
                      num(t.direct_turns));
           });
  w.family("weave_tcp_io_kept_readiness_total", "counter",
           "Readiness the TCP I/O thread kept for a turn that stopped at its "
           "share of a socket still ready, instead of re-arming the socket.",
           [&] {
             w.sample("weave_tcp_io_kept_readiness_total", "", {},
                      num(t.kept_readiness));
           });
}

void write_channels(writer& w, const std::vector<channel_metrics>& cs) {
  auto ls = labels_of(cs);
  auto gauge = [&](const char* name, const char* help, auto get) {
    per_item(w, name, "gauge", help, "channel", cs, ls,
             [&](const channel_metrics& c) { return num(get(c)); });
  };
  auto counter = [&](const char* name, const char* help, auto get) {
    per_item(w, name, "counter", help, "channel", cs, ls,
             [&](const channel_metrics& c) { return num(get(c)); });
  };
  gauge("weave_channel_capacity", "Most items the channel holds.",
        [](auto& c) { return c.capacity; });
  gauge("weave_channel_depth", "Items queued now.",
        [](auto& c) { return c.depth; });
  gauge("weave_channel_high_water", "Most items ever queued at once.",
        [](auto& c) { return c.high_water; });
  gauge("weave_channel_blocked_producers", "Threads blocked in put now.",
        [](auto& c) { return c.blocked_producers; });
  gauge("weave_channel_blocked_consumers", "Threads blocked in get now.",
        [](auto& c) { return c.blocked_consumers; });
  gauge("weave_channel_subscribers", "Actors and loops subscribed now.",
        [](auto& c) { return c.subscribers; });
  gauge("weave_channel_closed", "1 once the channel is closed.",
        [](auto& c) { return c.closed ? 1 : 0; });
  counter("weave_channel_puts_total", "Items accepted.",
          [](auto& c) { return c.puts; });
  counter("weave_channel_gets_total", "Items taken by consumers.",
          [](auto& c) { return c.gets; });
  counter("weave_channel_drops_total",
          "Items discarded by a drop_newest or drop_oldest channel.",
          [](auto& c) { return c.drops; });
  counter("weave_channel_refused_total",
          "Puts refused because a fail channel was full.",
          [](auto& c) { return c.refused; });
}

void write_loops(writer& w, const std::vector<loop_metrics>& lps) {
  auto ls = labels_of(lps);
  auto counter = [&](const char* name, const char* help, auto get) {
    per_item(w, name, "counter", help, "loop", lps, ls,
             [&](const loop_metrics& l) { return num(get(l)); });
  };
  counter("weave_loop_tasks_run_total", "Tasks the loop ran.",
          [](auto& l) { return l.lag.count(); });
  counter("weave_loop_submitted_total", "Functions submitted.",
          [](auto& l) { return l.submitted; });
  counter("weave_loop_posted_total", "Functions posted.",
          [](auto& l) { return l.posted; });
  counter("weave_loop_post_failures_total", "Posted functions that threw.",
          [](auto& l) { return l.post_failures; });
  per_item_histogram(w, "weave_loop_lag_seconds",
                     "Time from sending a task to the loop to its start.",
                     "loop", lps, ls,
                     [](const loop_metrics& l) -> auto& { return l.lag; });
}

void write_threads(writer& w, const metrics_snapshot& s) {
  const auto& t = s.threads;
  w.family("weave_threads", "gauge", "This runtime's threads by role.", [&] {
    w.sample("weave_threads", "", {{"role", "scheduler"}}, num(t.scheduler));
    w.sample("weave_threads", "", {{"role", "pool_worker"}},
             num(t.pool_workers));
    w.sample("weave_threads", "", {{"role", "loop"}}, num(t.loops));
    w.sample("weave_threads", "", {{"role", "blocker"}}, num(t.blockers));
  });
  w.family("weave_process_threads_running", "gauge",
           "Threads of every weave runtime in the process running now.",
           [&] {
             w.sample("weave_process_threads_running", "", {}, num(t.running));
           });
  w.family("weave_process_threads_started_total", "counter",
           "Threads every weave runtime in the process started.", [&] {
             w.sample("weave_process_threads_started_total", "", {},
                      num(t.started));
           });
  w.family("weave_process_late_results_dropped_total", "counter",
           "Results of abandoned jobs that arrived late and were dropped.",
           [&] {
             w.sample("weave_process_late_results_dropped_total", "", {},
                      num(t.late_results_dropped));
           });
  w.family("weave_slow_handlers_total", "counter",
           "Actor turns the blocking detector reported as too long.", [&] {
             w.sample("weave_slow_handlers_total", "", {},
                      num(s.slow_handlers));
           });
}

} // namespace

std::string to_prometheus(const metrics_snapshot& snapshot) {
  writer w;
  write_pools(w, snapshot.pools);
  write_scheduler(w, snapshot.scheduler);
  write_tcp_io(w, snapshot.tcp_io);
  write_channels(w, snapshot.channels);
  write_loops(w, snapshot.loops);
  write_threads(w, snapshot);
  return w.take();
}

} // namespace weave
