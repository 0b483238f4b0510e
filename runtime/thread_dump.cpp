#include "runtime/thread_dump.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ostream>

#include "runtime/internal/thread_activity.hpp"

namespace weave {

namespace {

using internal::blocking_detector;
using internal::thread_record_copy;

/// "2.503s", "497ms", "12us" (three significant digits at most).
std::string duration_text(caf::timespan d) {
  auto ns = d.count();
  const char* sign = ns < 0 ? "-" : "";
  auto a = static_cast<double>(ns < 0 ? -ns : ns);
  char buf[32];
  if (a >= 1e9)
    std::snprintf(buf, sizeof(buf), "%s%.3gs", sign, a / 1e9);
  else if (a >= 1e6)
    std::snprintf(buf, sizeof(buf), "%s%.3gms", sign, a / 1e6);
  else if (a >= 1e3)
    std::snprintf(buf, sizeof(buf), "%s%.3gus", sign, a / 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%s%.3gns", sign, a);
  return buf;
}

thread_dump::state from_idle(blocking_detector::idle_state s) {
  switch (s) {
    case blocking_detector::idle_state::running:
      return thread_dump::state::running;
    case blocking_detector::idle_state::polling:
    case blocking_detector::idle_state::claimed:
      return thread_dump::state::spinning;
    case blocking_detector::idle_state::sleeping:
      return thread_dump::state::parked;
  }
  return thread_dump::state::unknown;
}

/// `now`: the steady clock (deadlines, scheduler slots); `coarse_now`: the
/// clock of the records' `since_ns`.
thread_dump::thread make_entry(const thread_record_copy& rec, int64_t now,
                               int64_t coarse_now) {
  thread_dump::thread t;
  t.name = rec.name;
  t.role = static_cast<thread_dump::role>(rec.role);
  auto& a = rec.activity;
  t.state = static_cast<thread_dump::state>(a.state);
  if (a.since_ns != 0)
    t.elapsed = caf::timespan{std::max<int64_t>(0, coarse_now - a.since_ns)};
  if (a.job != nullptr) {
    t.job_kind = a.kind != nullptr ? a.kind : "job";
    t.label = a.label;
    if (a.deadline_ns != INT64_MAX)
      t.deadline_in = caf::timespan{a.deadline_ns - now};
    if (a.stop_cause != errc{})
      t.stop_requested = a.stop_cause;
  }
  if (rec.has_slot) {
    // A scheduler worker: its state is the slot's; a loop task it runs (a
    // loop placed on the scheduler) is the record's job.
    if (rec.in_resume) {
      t.state = thread_dump::state::running;
      t.actor = rec.actor;
      t.actor_name = rec.actor_name;
      if (a.job == nullptr)
        t.elapsed = caf::timespan{now - rec.resume_started_ns};
    } else {
      t.state = from_idle(rec.idle);
      t.elapsed.reset();
    }
  }
  return t;
}

} // namespace

namespace internal {

thread_dump take_thread_dump(const void* owner) {
  auto records = copy_thread_activity(owner);
  thread_dump d;
  d.taken = std::chrono::steady_clock::now();
  auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
               d.taken.time_since_epoch())
               .count();
  auto coarse_now = activity_clock_ns();
  d.threads.reserve(records.size());
  for (auto& rec : records)
    d.threads.emplace_back(make_entry(rec, now, coarse_now));
  std::sort(d.threads.begin(), d.threads.end(),
            [](const thread_dump::thread& x, const thread_dump::thread& y) {
              if (x.role != y.role)
                return x.role < y.role;
              if (x.name.size() != y.name.size()) // weave-pool_2 < _10
                return x.name.size() < y.name.size();
              return x.name < y.name;
            });
  return d;
}

} // namespace internal

const thread_dump::thread*
thread_dump::find(const std::string& name) const noexcept {
  for (auto& t : threads)
    if (t.name == name)
      return &t;
  return nullptr;
}

static_assert(static_cast<int>(thread_dump::role::service)
                == static_cast<int>(internal::thread_role::service));

const char* to_string(thread_dump::role r) noexcept {
  switch (r) {
    case thread_dump::role::scheduler:
      return "scheduler";
    case thread_dump::role::clock:
      return "clock";
    case thread_dump::role::pool_worker:
      return "pool worker";
    case thread_dump::role::loop:
      return "loop";
    case thread_dump::role::blocker:
      return "blocker";
    case thread_dump::role::actor:
      return "actor";
    case thread_dump::role::service:
      return "service";
  }
  return "?";
}

const char* to_string(thread_dump::state s) noexcept {
  switch (s) {
    case thread_dump::state::unknown:
      return "unknown";
    case thread_dump::state::running:
      return "running";
    case thread_dump::state::spinning:
      return "spinning";
    case thread_dump::state::parked:
      return "parked";
  }
  return "?";
}

std::string thread_dump::to_string() const {
  size_t width = 0;
  for (auto& t : threads)
    width = std::max(width, t.name.size());
  std::string out = "weave thread dump: " + std::to_string(threads.size())
                    + (threads.size() == 1 ? " thread" : " threads");
  for (auto& t : threads) {
    out += "\n  ";
    out += t.name;
    out.append(width + 2 - t.name.size(), ' ');
    char cols[32];
    std::snprintf(cols, sizeof(cols), "%-12s %-9s", weave::to_string(t.role),
                  weave::to_string(t.state));
    out += cols;
    std::string what;
    if (t.actor != 0)
      what = "actor #" + std::to_string(t.actor) + " (" + t.actor_name + ")";
    if (!t.job_kind.empty()) {
      if (!what.empty())
        what += ", ";
      what += t.label.empty() ? t.job_kind
                              : "\"" + t.label + "\" (" + t.job_kind + ")";
    }
    if (!what.empty())
      out += " " + what;
    if (t.elapsed)
      out += " for " + duration_text(*t.elapsed);
    if (t.deadline_in)
      out += *t.deadline_in >= caf::timespan::zero()
               ? ", deadline in " + duration_text(*t.deadline_in)
               : ", deadline passed " + duration_text(-*t.deadline_in)
                   + " ago";
    if (t.stop_requested)
      out += std::string{", stop requested ("}
             + weave::to_string(*t.stop_requested) + ")";
    while (!out.empty() && out.back() == ' ')
      out.pop_back();
  }
  return out;
}

std::ostream& operator<<(std::ostream& out, const thread_dump& dump) {
  return out << dump.to_string();
}

} // namespace weave
