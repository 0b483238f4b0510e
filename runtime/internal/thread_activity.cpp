#include "runtime/internal/thread_activity.hpp"

#include <algorithm>
#include <condition_variable>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>

#include "runtime/this_thread.hpp"

namespace weave::internal {

namespace {

/// How much of an actor's name a dump copies.
constexpr size_t max_actor_name = 255;

/// How often a dumper retries a record its owner keeps rewriting before it
/// takes what it has (a thread starting a job every few nanoseconds).
constexpr int max_read_attempts = 64;

/// The coarse monotonic clock: a few nanoseconds to read (the precise one
/// costs more than the rest of a job's publication), accurate to one
/// kernel tick (`coarse_resolution_ns`), plenty for "running for 2.5s".
int64_t now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t to_ns(steady_clock::time_point t) noexcept {
  if (t == steady_clock::time_point::max())
    return INT64_MAX;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           t.time_since_epoch())
    .count();
}

/// Every record of every runtime; intentionally never destroyed (threads
/// may end after static destruction began).
struct registry {
  std::mutex mtx;
  thread_activity* head = nullptr;
  /// Notified when a record enters or changes role (wait_for_thread_roles).
  std::condition_variable roles_changed;
};

registry& the_registry() {
  static auto* r = new registry;
  return *r;
}

thread_local thread_activity* tl_activity = nullptr;

} // namespace

void thread_activity::begin_job(const job& j) noexcept {
  auto d = j.describe();
  auto deadline = to_ns(j.deadline);
  auto started = now_ns();
  write_begin();
  state_.store(thread_state::running, std::memory_order_release);
  since_ns_.store(started, std::memory_order_release);
  job_.store(&j, std::memory_order_release);
  kind_.store(d.kind, std::memory_order_release);
  deadline_ns_.store(deadline, std::memory_order_release);
  stop_cause_.store(0, std::memory_order_release);
  auto n = std::min(d.label.size(), max_label);
  if (n > 0) {
    uint64_t words[label_words] = {};
    std::memcpy(words, d.label.data(), n);
    for (size_t i = 0; i < (n + 7) / 8; ++i)
      label_[i].store(words[i], std::memory_order_release);
  }
  label_len_.store(static_cast<uint8_t>(n), std::memory_order_release);
  write_end();
}

void thread_activity::end_job(thread_state next) noexcept {
  write_begin();
  state_.store(next, std::memory_order_release);
  since_ns_.store(0, std::memory_order_release);
  job_.store(nullptr, std::memory_order_release);
  label_len_.store(0, std::memory_order_release);
  write_end();
}

void thread_activity::set_state(thread_state next, bool stamp) noexcept {
  auto t = stamp ? now_ns() : 0;
  write_begin();
  state_.store(next, std::memory_order_release);
  since_ns_.store(t, std::memory_order_release);
  write_end();
}

thread_activity::snapshot thread_activity::read() const noexcept {
  snapshot s;
  for (int attempt = 0; attempt < max_read_attempts; ++attempt) {
    auto s1 = seq_.load(std::memory_order_acquire);
    if ((s1 & 1) != 0)
      continue;
    // Acquire loads: a field written after `s1` makes the second read of
    // the sequence number below see it moved.
    s.state = state_.load(std::memory_order_acquire);
    s.since_ns = since_ns_.load(std::memory_order_acquire);
    s.job = job_.load(std::memory_order_acquire);
    s.kind = kind_.load(std::memory_order_acquire);
    s.deadline_ns = deadline_ns_.load(std::memory_order_acquire);
    s.stop_cause = static_cast<errc>(
      stop_cause_.load(std::memory_order_acquire));
    size_t n = std::min<size_t>(label_len_.load(std::memory_order_acquire),
                                max_label);
    uint64_t words[label_words] = {};
    for (size_t i = 0; i < (n + 7) / 8; ++i)
      words[i] = label_[i].load(std::memory_order_acquire);
    std::memcpy(s.label, words, n);
    s.label[n] = '\0';
    if (s.job == nullptr)
      s.kind = nullptr;
    if (seq_.load(std::memory_order_acquire) == s1)
      return s;
  }
  return s; // rewritten all along: the last copy, possibly mixed
}

int64_t activity_clock_ns() noexcept {
  return now_ns();
}

int64_t activity_clock_resolution_ns() noexcept {
  timespec ts;
  if (::clock_getres(CLOCK_MONOTONIC_COARSE, &ts) != 0)
    return 0;
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void enter_thread_activity(const void* owner, thread_role role,
                           std::string name) noexcept {
  thread_activity* rec = nullptr;
  try {
    rec = new thread_activity;
  } catch (...) {
    return; // no memory: the thread is missing from dumps, nothing else
  }
  rec->owner = owner;
  rec->role = role;
  auto& r = the_registry();
  std::unique_lock<std::mutex> guard{r.mtx};
  try {
    rec->name = std::move(name);
  } catch (...) {
    // keeps no name
  }
  rec->next = r.head;
  if (r.head != nullptr)
    r.head->prev = rec;
  r.head = rec;
  tl_activity = rec;
  guard.unlock();
  r.roles_changed.notify_all();
}

service_thread_scope::service_thread_scope(const void* owner,
                                           std::string name) noexcept {
  if (tl_activity == nullptr) {
    enter_thread_activity(owner, thread_role::service, std::move(name));
    entered_ = tl_activity != nullptr;
  }
}

service_thread_scope::~service_thread_scope() {
  if (entered_)
    leave_thread_activity();
}

void leave_thread_activity() noexcept {
  auto rec = tl_activity;
  if (rec == nullptr)
    return;
  tl_activity = nullptr;
  auto& r = the_registry();
  {
    std::unique_lock<std::mutex> guard{r.mtx};
    if (rec->prev != nullptr)
      rec->prev->next = rec->next;
    else
      r.head = rec->next;
    if (rec->next != nullptr)
      rec->next->prev = rec->prev;
  }
  delete rec;
}

thread_activity* this_thread_activity() noexcept {
  return tl_activity;
}

void set_thread_role(thread_role role) noexcept {
  if (auto rec = tl_activity) {
    auto& r = the_registry();
    {
      std::unique_lock<std::mutex> guard{r.mtx};
      rec->role = role;
    }
    r.roles_changed.notify_all();
  }
}

bool wait_for_thread_roles(const void* owner, size_t schedulers,
                           size_t clocks, steady_clock::time_point deadline) {
  auto& r = the_registry();
  auto enough = [&] {
    size_t s = 0;
    size_t c = 0;
    for (auto rec = r.head; rec != nullptr; rec = rec->next) {
      if (rec->owner != owner)
        continue;
      if (rec->role == thread_role::scheduler)
        ++s;
      else if (rec->role == thread_role::clock)
        ++c;
    }
    return s >= schedulers && c >= clocks;
  };
  std::unique_lock<std::mutex> guard{r.mtx};
  return r.roles_changed.wait_until(guard, deadline, enough);
}

void bind_thread_activity(const blocking_detector::slot* s,
                          size_t worker) noexcept {
  auto rec = tl_activity;
  if (rec == nullptr)
    return;
  try {
    set_this_thread_name("weave-sched-" + std::to_string(worker));
  } catch (...) {
    // keeps the name it has
  }
  set_thread_role(thread_role::scheduler);
  rec->bind_slot(s, worker);
}

void rename_thread_activity(const std::string& name) noexcept {
  if (auto rec = tl_activity) {
    std::unique_lock<std::mutex> guard{the_registry().mtx};
    try {
      rec->name = name;
    } catch (...) {
      // keeps its old name
    }
  }
}

void note_stop(const job& j, errc cause) noexcept {
  auto& r = the_registry();
  std::unique_lock<std::mutex> guard{r.mtx};
  // The job's runner published it before claiming it, and lets go of it
  // only after every stopper left (job::wait_while_stopping): its record
  // shows it now.
  for (auto rec = r.head; rec != nullptr; rec = rec->next) {
    if (rec->job_.load(std::memory_order_acquire) == &j) {
      uint8_t expected = 0;
      rec->stop_cause_.compare_exchange_strong(
        expected, static_cast<uint8_t>(cause), std::memory_order_acq_rel);
      return;
    }
  }
}

namespace {

/// Copies a scheduler worker's slot (a seqlock read, like the detector's).
void copy_slot(const blocking_detector::slot& s, thread_record_copy& out) {
  for (int attempt = 0; attempt < max_read_attempts; ++attempt) {
    auto e1 = s.epoch.load(std::memory_order_acquire);
    out.idle = s.idle.load(std::memory_order_acquire);
    out.in_resume = (e1 & 1) != 0;
    if (!out.in_resume)
      return;
    out.resume_started_ns = s.started_ns.load(std::memory_order_acquire);
    out.actor = s.actor.load(std::memory_order_acquire);
    auto name = s.name.load(std::memory_order_acquire);
    char buf[max_actor_name + 1];
    size_t len = 0;
    if (name != nullptr)
      while (len < max_actor_name && name[len] != '\0') {
        buf[len] = name[len];
        ++len;
      }
    // A read-don't-modify-write keeps the copies above before the re-read
    // (see blocking_detector.cpp).
    auto* epoch = const_cast<std::atomic<uint64_t>*>(&s.epoch);
    if (epoch->fetch_add(0, std::memory_order_acq_rel) == e1) {
      out.actor_name.assign(buf, len);
      return;
    }
  }
  out.in_resume = false; // busy switching actors all along: shown as running
}

} // namespace

std::vector<thread_record_copy> copy_thread_activity(const void* owner) {
  std::vector<thread_record_copy> result;
  auto& r = the_registry();
  std::unique_lock<std::mutex> guard{r.mtx};
  for (auto rec = r.head; rec != nullptr; rec = rec->next) {
    if (rec->owner != owner)
      continue;
    thread_record_copy c;
    c.name = rec->name;
    c.role = rec->role;
    c.activity = rec->read();
    if (auto s = rec->slot()) {
      c.has_slot = true;
      c.worker = rec->worker();
      copy_slot(*s, c);
    }
    result.emplace_back(std::move(c));
  }
  return result;
}

} // namespace weave::internal
