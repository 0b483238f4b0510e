#include "runtime/shutdown_report.hpp"

#include <chrono>
#include <cstdio>

namespace weave {

namespace {

std::string ms(caf::timespan t) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fms",
                std::chrono::duration<double, std::milli>(t).count());
  return buf;
}

} // namespace

std::string shutdown_report::to_string() const {
  std::string out = "weave shutdown:";
  auto add = [&](size_t n, const char* what) {
    out += ' ';
    out += std::to_string(n);
    out += ' ';
    out += what;
    out += ',';
  };
  add(jobs_completed, "jobs completed");
  add(jobs_cancelled, "queued jobs cancelled");
  add(jobs_abandoned, "jobs abandoned");
  add(futures_failed, "futures failed");
  add(channels_closed, "channels closed");
  add(threads_joined, "threads joined");
  add(threads_abandoned, "threads abandoned");
  add(actors_abandoned, "actors abandoned");
  if (workers_quarantined != 0)
    add(workers_quarantined, "workers quarantined");
  out.pop_back();
  out += " in ";
  out += ms(total);
  if (!phases.empty()) {
    out += " (";
    for (auto& [name, t] : phases) {
      out += name;
      out += ' ';
      out += ms(t);
      out += ", ";
    }
    out.resize(out.size() - 2);
    out += ')';
  }
  return out;
}

} // namespace weave
