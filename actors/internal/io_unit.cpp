#include "actors/internal/io_unit.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sched.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <utility>
#include <vector>

#include "caf/actor_control_block.hpp"
#include "caf/actor_system.hpp"
#include "caf/message_id.hpp"
#include "caf/resumable.hpp"
#include "caf/scheduled_actor.hpp"
#include "caf/scheduler/abstract_coordinator.hpp"

#include "runtime/deadline_scope.hpp"
#include "runtime/internal/histogram_metrics.hpp"
#include "runtime/internal/thread_roles.hpp"

namespace weave::actors::internal {

namespace {

/// The unit bound to the calling thread, if any (a thread-local, so a
/// thread that reuses an ended I/O thread's id is never mistaken for it).
thread_local io_unit* bound_unit = nullptr;

/// A small file's text, or empty.
std::string read_text(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return out;
  char buf[4096];
  for (;;) {
    auto n = ::read(fd, buf, sizeof(buf));
    if (n <= 0 || out.size() > 65536)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

/// The number at the start of `text` (after blanks), or false; `after`,
/// if given, gets the position just past it.
bool leading_number(const std::string& text, size_t pos, uint64_t& out,
                    size_t* after = nullptr) {
  while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t'))
    ++pos;
  if (pos >= text.size() || text[pos] < '0' || text[pos] > '9')
    return false;
  char* end = nullptr;
  out = std::strtoull(text.c_str() + pos, &end, 10);
  if (after != nullptr)
    *after = static_cast<size_t>(end - text.c_str());
  return end != text.c_str() + pos;
}

/// A quota of `quota` per `period` in hundredths of a core, without
/// overflowing (a quota beyond 64 bits of hundredths is no limit at all).
uint64_t hundredths(uint64_t quota, uint64_t period) noexcept {
  auto x100 = static_cast<unsigned __int128>(quota) * 100 / period;
  return x100 > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(x100);
}

/// `dir` and its parents up to "/" (for "/a/b": "/a/b", "/a", "/").
std::vector<std::string> self_and_parents(std::string dir) {
  std::vector<std::string> out;
  if (dir.empty() || dir[0] != '/')
    dir.insert(dir.begin(), '/');
  while (dir.size() > 1 && dir.back() == '/')
    dir.pop_back();
  for (;;) {
    out.push_back(dir);
    if (dir == "/")
      break;
    auto slash = dir.rfind('/');
    dir = slash == 0 ? std::string{"/"} : dir.substr(0, slash);
  }
  return out;
}

std::string join_path(const std::string& a, const std::string& b) {
  if (b == "/")
    return a;
  return a + b;
}

/// This process's CPU time so far (every thread), in nanoseconds.
uint64_t process_cpu_ns() noexcept {
  ::rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto us = [](const ::timeval& tv) {
    return static_cast<uint64_t>(tv.tv_sec) * 1'000'000
           + static_cast<uint64_t>(tv.tv_usec);
  };
  return (us(ru.ru_utime) + us(ru.ru_stime)) * 1000;
}

} // namespace

io_unit::io_unit(caf::actor_system& sys, size_t turns,
                 weave::internal::blocking_detector* detector,
                 gather_mode gather)
  : caf::execution_unit(&sys), turns_(turns), mode_(gather),
    detector_(detector),
    slot_(detector != nullptr ? detector->io_slot() : nullptr),
    metrics_(detector != nullptr ? detector->metrics().io() : nullptr) {
  // No turns here, nothing to gather (every readiness goes to a worker).
  gathering_.store(gather == gather_mode::always && turns > 0,
                   std::memory_order_relaxed);
}

io_unit::~io_unit() {
  if (stat_fd_ >= 0)
    ::close(stat_fd_);
}

bool io_unit::parse_stat(const char* text, const std::vector<bool>* only,
                         uint64_t& busy, uint64_t& total) noexcept {
  // Lines "cpu  user nice system idle iowait irq softirq steal ..." (the
  // machine), then "cpuN ..." per core; only the first eight count (guest
  // time is in user already).
  bool found = false;
  busy = 0;
  total = 0;
  for (const char* line = text; line != nullptr && *line != '\0';) {
    const char* next = std::strchr(line, '\n');
    if (std::strncmp(line, "cpu", 3) != 0)
      break; // the cpu lines come first
    const char* at = line + 3;
    bool wanted = false;
    if (*at == ' ') {
      wanted = only == nullptr; // the machine's line
    } else if (only != nullptr && *at >= '0' && *at <= '9') {
      char* end = nullptr;
      auto cpu = std::strtoull(at, &end, 10);
      wanted = cpu < only->size() && (*only)[cpu];
      at = end;
    }
    if (wanted) {
      // A line without its newline may be cut off (a full buffer): its
      // last number may be a prefix of the real one.
      if (next == nullptr)
        return false;
      uint64_t field[8] = {};
      bool ok = true;
      for (auto& f : field) {
        char* end = nullptr;
        f = std::strtoull(at, &end, 10);
        if (end == at || end > next) { // strtoull skips newlines too
          ok = false;
          break;
        }
        at = end;
      }
      if (!ok)
        return false;
      uint64_t all = 0;
      for (auto f : field)
        all += f;
      total += all;
      busy += all - field[3] - field[4]; // less idle and iowait
      found = true;
    }
    line = next != nullptr ? next + 1 : nullptr;
  }
  return found;
}

bool io_unit::read_machine(uint64_t& busy, uint64_t& total) noexcept {
  if (stat_fd_ < 0 || stat_buf_.size() < 2)
    return false;
  ssize_t n = 0;
  for (;;) {
    n = ::pread(stat_fd_, stat_buf_.data(), stat_buf_.size() - 1, 0);
    if (n <= 0)
      return false;
    // A full buffer may have cut the cpu lines: a larger one (once; its
    // size stays for the next looks).
    if (static_cast<size_t>(n) < stat_buf_.size() - 1)
      break;
    if (stat_buf_.size() >= (size_t{1} << 20))
      return false;
    try {
      stat_buf_.resize(stat_buf_.size() * 2);
    } catch (...) {
      return false;
    }
  }
  stat_buf_[static_cast<size_t>(n)] = '\0';
  return parse_stat(stat_buf_.data(), cpus_of_ours_.empty() ? nullptr
                                                            : &cpus_of_ours_,
                    busy, total);
}

bool io_unit::gathers(bool now, uint64_t left_x100) noexcept {
  return left_x100 < (now ? spread_again_x100 : min_free_cores_x100);
}

uint64_t io_unit::quota_left_x100(uint64_t quota_x100, uint64_t window_ns,
                                  uint64_t others_ns) noexcept {
  if (window_ns == 0)
    return quota_x100;
  auto others_x100 = static_cast<uint64_t>(static_cast<double>(others_ns)
                                           * 100.0
                                           / static_cast<double>(window_ns));
  return quota_x100 > others_x100 ? quota_x100 - others_x100 : 0;
}

namespace {

/// One line of `/proc/self/cgroup`: "hierarchy-id:controllers:path".
struct cgroup_line {
  std::string id;
  std::string controllers;
  std::string path;

  bool has(const char* controller) const {
    for (size_t at = 0; at <= controllers.size();) {
      auto comma = controllers.find(',', at);
      if (comma == std::string::npos)
        comma = controllers.size();
      if (controllers.compare(at, comma - at, controller) == 0)
        return true;
      at = comma + 1;
    }
    return false;
  }
};

std::vector<cgroup_line> cgroup_lines(const std::string& text) {
  std::vector<cgroup_line> out;
  size_t line_start = 0;
  while (line_start < text.size()) {
    auto line_end = text.find('\n', line_start);
    if (line_end == std::string::npos)
      line_end = text.size();
    auto line = text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    auto c1 = line.find(':');
    auto c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string::npos)
      continue;
    out.push_back({line.substr(0, c1), line.substr(c1 + 1, c2 - c1 - 1),
                   line.substr(c2 + 1)});
  }
  return out;
}

/// Where a v1 hierarchy of `line`'s controllers is mounted under
/// `fs_root`: named as listed (also "cpuset,cpu,cpuacct"), or one of
/// `usual`; empty if none is there (a v1 hierarchy's root always has
/// `probe`).
std::string v1_mount(const std::string& fs_root, const cgroup_line& line,
                     std::initializer_list<const char*> usual,
                     const char* probe) {
  std::vector<std::string> names{"/" + line.controllers};
  for (const char* name : usual)
    names.emplace_back(name);
  for (auto& name : names)
    if (::access((fs_root + name + "/" + probe).c_str(), F_OK) == 0)
      return fs_root + name;
  return {};
}

} // namespace

io_unit::cpu_quota io_unit::find_cpu_quota(const std::string& self_cgroup,
                                           const std::string& fs_root) {
  cpu_quota out;
  auto consider = [&](uint64_t x100, std::string usage) {
    if (x100 == 0)
      x100 = 1; // a quota below a hundredth of a core still is one
    if (out.cores_x100 == 0 || x100 < out.cores_x100) {
      out.cores_x100 = x100;
      out.usage_path = usage;
    }
    out.levels.push_back({x100, std::move(usage)});
  };
  auto lines = cgroup_lines(self_cgroup);
  // v1's cpuacct, where it is a hierarchy apart from cpu.
  const cgroup_line* acct = nullptr;
  for (auto& line : lines)
    if (line.id != "0" && line.has("cpuacct") && !line.has("cpu"))
      acct = &line;
  for (auto& line : lines) {
    if (line.id == "0" && line.controllers.empty()) {
      // cgroup v2: "max 100000" or "<quota> <period>" in each level.
      for (auto& dir : self_and_parents(line.path)) {
        auto base = join_path(fs_root, dir);
        auto text = read_text(base + "/cpu.max");
        uint64_t quota = 0;
        uint64_t period = 0;
        size_t after = 0;
        if (!leading_number(text, 0, quota, &after)
            || !leading_number(text, after, period) || period == 0)
          continue; // no file, or "max"
        consider(hundredths(quota, period), base + "/cpu.stat");
      }
      continue;
    }
    if (!line.has("cpu"))
      continue;
    // cgroup v1: the cpu controller, often mounted with cpuacct. Without
    // a cgroup namespace the path names the host's cgroup while the
    // container's own is mounted at the root: found walking up.
    auto root = v1_mount(fs_root, line, {"/cpu,cpuacct", "/cpu",
                                         "/cpuacct,cpu"},
                         "cpu.cfs_period_us");
    if (root.empty())
      continue;
    std::string acct_root;
    if (!line.has("cpuacct") && acct != nullptr && acct->path == line.path)
      acct_root = v1_mount(fs_root, *acct, {"/cpuacct"}, "cpuacct.usage");
    for (auto& dir : self_and_parents(line.path)) {
      auto base = join_path(root, dir);
      uint64_t quota = 0;
      uint64_t period = 0;
      // -1 (no quota) does not parse as a number.
      if (!leading_number(read_text(base + "/cpu.cfs_quota_us"), 0, quota)
          || !leading_number(read_text(base + "/cpu.cfs_period_us"), 0,
                             period)
          || period == 0)
        continue;
      // Its CPU time: in the same directory if mounted together; in the
      // cpuacct hierarchy at the same place if this process sits at the
      // same place there (else that group may hold other processes: none).
      std::string usage;
      if (line.has("cpuacct")
          || ::access((base + "/cpuacct.usage").c_str(), F_OK) == 0)
        usage = base + "/cpuacct.usage"; // (or reached by a symlink)
      else if (!acct_root.empty())
        usage = join_path(acct_root, dir) + "/cpuacct.usage";
      consider(hundredths(quota, period), std::move(usage));
    }
  }
  return out;
}

bool io_unit::read_cgroup_usage_ns(const std::string& usage_path,
                                   uint64_t& ns) noexcept {
  if (usage_path.empty())
    return false;
  try {
    auto text = read_text(usage_path);
    auto slash = usage_path.rfind('/');
    if (usage_path.compare(slash + 1, std::string::npos, "cpu.stat") == 0) {
      // v2: a line "usage_usec N" among others.
      auto at = text.find("usage_usec ");
      while (at != std::string::npos && at != 0 && text[at - 1] != '\n')
        at = text.find("usage_usec ", at + 1);
      uint64_t us = 0;
      if (at == std::string::npos || !leading_number(text, at + 11, us))
        return false;
      ns = us * 1000;
      return true;
    }
    return leading_number(text, 0, ns); // v1: nanoseconds
  } catch (...) {
    return false; // no memory for a path: no look
  }
}

bool io_unit::gathering_here() noexcept {
  return bound_unit != nullptr && bound_unit->gathering();
}

io_unit* io_unit::current() noexcept {
  return bound_unit;
}

void io_unit::count_kept_readiness() noexcept {
  if (metrics_ != nullptr)
    weave::internal::bump(metrics_->kept_readiness);
}

void io_unit::bind() noexcept {
  bound_unit = this;
  if (mode_ == gather_mode::automatic && turns_ > 0 && !probed_) {
    probed_ = true;
    stat_fd_ = ::open("/proc/stat", O_RDONLY | O_CLOEXEC);
    auto hz = ::sysconf(_SC_CLK_TCK);
    auto cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    tick_ns_ = hz > 0 ? 1'000'000'000 / static_cast<uint64_t>(hz) : 0;
    cpus_ = cpus > 0 ? static_cast<uint64_t>(cpus) : 0;
    auto conf = ::sysconf(_SC_NPROCESSORS_CONF);
    size_t slots = std::max<size_t>(conf > 0 ? static_cast<size_t>(conf) : 0,
                                    static_cast<size_t>(cpus_));
    try {
      // The cores this process may run on (a cpuset, `taskset`): only
      // their load counts, and only they are this process's to share.
      cpu_set_t mask;
      CPU_ZERO(&mask);
      if (::sched_getaffinity(::getpid(), sizeof(mask), &mask) == 0) {
        auto ours = static_cast<uint64_t>(CPU_COUNT(&mask));
        if (ours > 0 && ours < cpus_) {
          cpus_of_ours_.assign(CPU_SETSIZE, false);
          for (size_t cpu = 0; cpu < CPU_SETSIZE; ++cpu)
            cpus_of_ours_[cpu] = CPU_ISSET(cpu, &mask);
          cpus_ = ours;
        }
      }
      // The cpu lines: the machine's, and one per core (~100 bytes each).
      stat_buf_.resize(512 + 128 * std::max<size_t>(slots, 1));
    } catch (...) {
      stat_buf_.clear(); // no memory: the machine's load is unknown
    }
    last_look_ = std::chrono::steady_clock::now();
    last_ours_ns_ = process_cpu_ns();
    if ((!read_machine(last_busy_, last_total_) || tick_ns_ == 0
         || cpus_ == 0)
        && stat_fd_ >= 0) {
      ::close(stat_fd_);
      stat_fd_ = -1; // the machine's load is unknown
    }
    try {
      quota_ = find_cpu_quota(read_text("/proc/self/cgroup"),
                              "/sys/fs/cgroup");
    } catch (...) {
      quota_ = cpu_quota{}; // no memory: no quota seen
    }
    // A quota without its usage still counts (as if the cgroup's other
    // processes used nothing).
    for (auto& level : quota_.levels) {
      if (!read_cgroup_usage_ns(level.usage_path, level.last_usage_ns))
        level.usage_path.clear();
      level.last_ours_ns = last_ours_ns_;
      level.last_look = last_look_;
    }
    looking_ = stat_fd_ >= 0 || quota_.cores_x100 > 0;
  }
  // User handlers may run here: waiting on a future must be refused.
  weave::internal::set_this_thread_must_not_block(true);
  if (slot_ != nullptr)
    slot_->tid.store(static_cast<int32_t>(::syscall(SYS_gettid)),
                     std::memory_order_release);
}

void io_unit::unbind() noexcept {
  bound_unit = nullptr;
  // Nothing runs here any more: a producer must not wait for this thread.
  gathering_.store(false, std::memory_order_relaxed);
  release_kept();
}

void io_unit::sample() noexcept {
  if (!looking_)
    return; // no clock read either: not `automatic`
  auto now = std::chrono::steady_clock::now();
  if (now - last_look_ < sample_every)
    return;
  // The next look comes `sample_every` later even if this one says nothing
  // (no clock tick since the last: the machine's window goes on).
  last_look_ = now;
  auto ours = process_cpu_ns();
  uint64_t busy = 0;
  uint64_t total = 0;
  if (stat_fd_ >= 0 && read_machine(busy, total)) {
    if (total < last_total_ || busy < last_busy_) {
      // Counters that went back (a core of ours went offline, iowait's
      // known step back): a new window from here, no figure from this one
      // (waiting for `total` to pass the old one could take for ever, and
      // `busy - last_busy_` would wrap).
      last_busy_ = busy;
      last_total_ = total;
      last_ours_ns_ = ours;
    } else if (total > last_total_) {
      machine_left_x100_ = cores_left_x100(cpus_,
                                           (total - last_total_) * tick_ns_,
                                           (busy - last_busy_) * tick_ns_,
                                           ours - last_ours_ns_);
      last_busy_ = busy;
      last_total_ = total;
      last_ours_ns_ = ours;
    }
  }
  auto left = machine_left_x100_;
  for (auto& level : quota_.levels) {
    // Each cgroup's time less ours: its other processes (our children
    // too). Its usage, ours and the window all from the last look that
    // read the usage (a failed read, say out of descriptors, must not
    // leave ours of that window in the cgroup's figure as "others").
    uint64_t others = 0;
    uint64_t usage = 0;
    uint64_t window_ns = 0;
    if (read_cgroup_usage_ns(level.usage_path, usage)) {
      auto used = usage > level.last_usage_ns ? usage - level.last_usage_ns
                                              : 0;
      auto ours_in_window = ours - level.last_ours_ns;
      others = used > ours_in_window ? used - ours_in_window : 0;
      window_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(
          now - level.last_look)
          .count());
      level.last_usage_ns = usage;
      level.last_ours_ns = ours;
      level.last_look = now;
    }
    left = std::min(left, quota_left_x100(level.cores_x100, window_ns,
                                          others));
  }
  if (left != UINT64_MAX) {
    // Apart from each other, so that a figure on the line (a quota of 1.5
    // cores, the others' few ms) does not flip it every look.
    gathering_.store(gathers(gathering(), left), std::memory_order_relaxed);
  }
}

uint64_t io_unit::cores_left_x100(uint64_t cpus, uint64_t all_ns,
                                  uint64_t busy_ns, uint64_t ours_ns) noexcept {
  if (all_ns == 0)
    return cpus * 100;
  // What other processes kept busy: the machine's busy time less this
  // process's, as a share of all cores' time in the window.
  auto others_ns = busy_ns > ours_ns ? std::min(busy_ns - ours_ns, all_ns) : 0;
  auto all_x100 = cpus * 100;
  return all_x100 - static_cast<uint64_t>(static_cast<double>(all_x100)
                                          * static_cast<double>(others_ns)
                                          / static_cast<double>(all_ns));
}

bool io_unit::has_kept() noexcept {
  std::unique_lock<std::mutex> guard{mtx_};
  return !kept_.empty();
}

caf::resumable* io_unit::keep(caf::resumable* job) noexcept {
  std::unique_lock<std::mutex> guard{mtx_};
  kept_.push_back(job);
  auto bound = gathering() ? turns_ : size_t{1};
  if (kept_.size() <= bound)
    return nullptr;
  auto older = kept_.front();
  kept_.pop_front();
  return older;
}

caf::resumable* io_unit::take() noexcept {
  std::unique_lock<std::mutex> guard{mtx_};
  if (kept_.empty())
    return nullptr;
  auto job = kept_.front();
  kept_.pop_front();
  return job;
}

void io_unit::release_kept() noexcept {
  // One at a time (no deque to swap into: its construction allocates, and
  // this runs after every pass while the unit spreads).
  for (caf::resumable* job; (job = take()) != nullptr;)
    to_scheduler(job);
}

void io_unit::deliver(const caf::strong_actor_ptr& who, caf::message msg) {
  who->enqueue(nullptr, caf::make_message_id(), std::move(msg),
               turns_ > 0 ? this : nullptr);
}

void io_unit::exec_later(caf::resumable* job) {
  if (bound_unit != this) {
    to_scheduler(job);
    return;
  }
  // Spreading: the newest job runs next here; an older one goes where a
  // worker can take it (one chain at a time on this thread). Gathering: up
  // to `turns_` wait here.
  if (auto older = keep(job))
    to_scheduler(older);
}

void io_unit::to_scheduler(caf::resumable* job) noexcept {
  system().scheduler().enqueue(job);
}

bool io_unit::run_direct(caf::scheduled_actor* who, direct_turn fn,
                         uint32_t events) noexcept {
  if (turns_ == 0 || bound_unit != this || !who->mailbox().try_unblock())
    return false;
  // Ours now, as a job taken from a queue is a worker's: nothing else runs
  // it, and whatever is sent to it stays in its mailbox.
  if (detector_ != nullptr)
    detector_->activity();
  weave::internal::reset_thread_deadline();
  if (slot_ != nullptr)
    weave::internal::blocking_detector::begin_turn(*slot_, who);
  // `activate` sets this unit as the actor's context (what it makes
  // runnable comes to `exec_later` here); false for an actor that ended.
  if (who->activate(this))
    fn(who, events);
  auto res = caf::resumable::awaiting_message;
  // An actor that quit in the turn is cleaned up here, as CAF's `resume`
  // does after a message (its mailbox closed: later messages bounce).
  // Messages that came meanwhile are handled in the same turn, as if the
  // readiness had been the first of them (CAF's `resume`, which blocks the
  // mailbox again or says there is more).
  if (!who->finalize() && !who->mailbox().try_block())
    res = who->resume(this, turn_messages);
  if (slot_ != nullptr) {
    if (metrics_ != nullptr) {
      metrics_->resume_ends(slot_->started_ns.load(std::memory_order_relaxed));
      weave::internal::bump(metrics_->direct);
    }
    weave::internal::blocking_detector::end_turn(*slot_);
  }
  weave::internal::reset_thread_deadline();
  if (res == caf::resumable::resume_later) {
    // More than one turn takes: a job now, with the reference a scheduled
    // actor's job holds (as `enqueue` takes), handled as in `run_chain`.
    caf::intrusive_ptr_add_ref(who->ctrl());
    if (!gathering())
      to_scheduler(who);
    else if (auto over = keep(who))
      to_scheduler(over);
  }
  return true;
}

size_t io_unit::run_chain(size_t done) noexcept {
  size_t turn = 0;
  auto budget = turns_ > done ? turns_ - done : std::min(turns_, size_t{1});
  // Work after a quiet spell: the watchdog comes back to its busy period
  // (as when a parked worker wakes with work).
  if (detector_ != nullptr && has_kept())
    detector_->activity();
  for (caf::resumable* job; turn < budget && (job = take()) != nullptr;
       ++turn) {
    // A deadline scope lasts at most one turn, as on a worker.
    weave::internal::reset_thread_deadline();
    if (slot_ != nullptr)
      weave::internal::blocking_detector::begin_turn(*slot_, job);
    auto res = job->resume(this, turn_messages);
    if (slot_ != nullptr) {
      if (metrics_ != nullptr)
        metrics_->resume_ends(slot_->started_ns.load(std::memory_order_relaxed));
      weave::internal::blocking_detector::end_turn(*slot_);
    }
    weave::internal::reset_thread_deadline();
    switch (res) {
      case caf::resumable::resume_later:
        // More messages than one turn here takes: spreading, on a worker
        // while this thread goes back to its sockets; gathering, after the
        // other kept jobs.
        if (!gathering()) {
          to_scheduler(job);
        } else if (auto over = keep(job)) {
          to_scheduler(over);
        }
        break;
      default:
        // done, awaiting_message (and shutdown_execution_unit, which only
        // the scheduler's own jobs return): the reference goes.
        caf::intrusive_ptr_release(job);
        break;
    }
  }
  // Spreading, the rest of the chain runs on the scheduler; gathering, it
  // waits here while the reactor looks at its sockets.
  if (!gathering())
    release_kept();
  return turn;
}

} // namespace weave::actors::internal
