#include "runtime/internal/blocking_detector.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "caf/scheduled_actor.hpp"

#include "runtime/error.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/runtime.hpp"
#include "runtime/internal/thread_activity.hpp"
#include "runtime/this_thread.hpp"

namespace weave::internal {

namespace {

/// The longest the watchdog sleeps while the scheduler is idle.
constexpr caf::timespan max_idle_period = std::chrono::seconds{30};

/// The longest the watchdog sleeps while a worker is busy: a worker stuck in
/// one resume for that long gets a sleeping worker woken to steal its queue.
constexpr caf::timespan max_busy_period = std::chrono::milliseconds{50};

/// How much of an actor's name a report carries.
constexpr size_t max_name_length = 255;

} // namespace

blocking_detector::blocking_detector(size_t workers, caf::timespan threshold)
  : workers_(workers), threshold_(threshold),
    slots_(new slot[workers + 1]), reported_(new uint64_t[workers + 1]()),
    span_epoch_(new uint64_t[workers + 1]()), meter_(workers + 1),
    metrics_(workers) {
  // nop
}

blocking_detector::~blocking_detector() {
  stop();
}

int64_t blocking_detector::now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

void blocking_detector::begin_turn(slot& s, caf::resumable* job) noexcept {
  caf::actor_id id = 0;
  const char* name = nullptr;
  if (job->subtype() == caf::resumable::scheduled_actor) {
    auto ptr = static_cast<caf::scheduled_actor*>(job);
    id = ptr->id();
    name = ptr->name();
  }
  s.started_ns.store(now_ns(), std::memory_order_relaxed);
  s.actor.store(id, std::memory_order_relaxed);
  s.name.store(name, std::memory_order_relaxed);
  s.epoch.fetch_add(1, std::memory_order_release); // odd: busy
}

void blocking_detector::start(const void* owner) {
  // Returns once the thread is listed, so that a dump taken right after the
  // runtime started shows it.
  std::mutex listed_mtx;
  std::condition_variable listed_cv;
  bool listed_done = false;
  thread_ = std::thread{[&, this, owner] {
    census_thread_started();
    set_this_thread_name("weave-watchdog");
    {
      service_thread_scope listed{owner, "weave-watchdog"};
      {
        // Notified under the lock: the waiter's locals die when it returns.
        std::unique_lock<std::mutex> guard{listed_mtx};
        listed_done = true;
        listed_cv.notify_all();
      }
      watch();
    }
    census_thread_ended();
  }};
  std::unique_lock<std::mutex> guard{listed_mtx};
  listed_cv.wait(guard, [&] { return listed_done; });
}

void blocking_detector::stop() {
  {
    std::unique_lock<std::mutex> guard{mtx_};
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void blocking_detector::set_handler(handler_type handler) {
  auto next = std::make_shared<const handler_type>(std::move(handler));
  {
    std::unique_lock<std::mutex> guard{mtx_};
    handler_.swap(next);
  }
  // `next` holds the replaced handler: destroyed here, unlocked (a running
  // call keeps its own reference).
}

void blocking_detector::set_io_rescue(io_rescue_type rescue) {
  auto next = std::make_shared<const io_rescue_type>(std::move(rescue));
  {
    std::unique_lock<std::mutex> guard{mtx_};
    io_rescue_.swap(next);
  }
}

void blocking_detector::report(const slow_handler_event& ev) {
  std::shared_ptr<const handler_type> handler;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    handler = handler_;
  }
  if (handler && *handler) {
    try {
      (*handler)(ev);
    } catch (...) {
      std::fprintf(stderr,
                   "weave: the slow-handler callback threw: %s\n",
                   current_exception_message().c_str());
    }
    return;
  }
  auto where = ev.worker < workers_
                 ? "scheduler worker " + std::to_string(ev.worker)
                 : std::string{"the TCP I/O thread"};
  std::fprintf(stderr,
               "weave: actor #%llu (%s) has held %s for "
               "%lld ms, %lld ms of it waiting for a core "
               "(weave.blocking-threshold is %lld ms); offload blocking "
               "calls\n",
               static_cast<unsigned long long>(ev.actor),
               ev.actor_name.c_str(), where.c_str(),
               static_cast<long long>(ev.held.count() / 1'000'000),
               static_cast<long long>(ev.waited_for_cpu.count() / 1'000'000),
               static_cast<long long>(threshold_.count() / 1'000'000));
  if (ev.dump)
    std::fprintf(stderr, "%s\n", ev.dump->to_string().c_str());
}

void blocking_detector::wake_thief(size_t busy) {
  for (size_t j = 0; j < workers_; ++j) {
    auto& s = slots_[j];
    if (j == busy
        || s.idle.load(std::memory_order_acquire) != idle_state::sleeping)
      continue;
    auto lock = s.wait_lock.load(std::memory_order_acquire);
    auto cv = s.wait_cv.load(std::memory_order_acquire);
    if (lock == nullptr || cv == nullptr)
      continue;
    {
      std::unique_lock<std::mutex> guard{*lock};
      s.steal_hint.store(true, std::memory_order_release);
    }
    cv->notify_one();
    return;
  }
}

void blocking_detector::poke() {
  {
    std::unique_lock<std::mutex> guard{mtx_};
    poked_ = true;
  }
  cv_.notify_all();
}

void blocking_detector::watch() {
  // While the scheduler is idle (no epoch moved since the last look), the
  // watchdog backs off, up to `max_idle_period`, so an idle runtime does not
  // wake up for it; the first resume it sees brings the period back down.
  const auto busy_period = std::min<caf::timespan>(threshold_ / 2,
                                                   max_busy_period);
  auto period = busy_period;
  std::unique_ptr<uint64_t[]> seen(new uint64_t[workers_ + 1]());
  std::vector<slow_handler_event> events;
  for (;;) {
    bool poked;
    {
      // Held only to wait: a worker's poke never waits behind a look, a
      // wake-up or a callback.
      std::unique_lock<std::mutex> guard{mtx_};
      cv_.wait_for(guard, period, [this] { return stop_ || poked_; });
      if (stop_)
        break;
      // A poke means work just arrived (its resume may not have begun
      // yet): watch closely from now on.
      poked = poked_;
      poked_ = false;
    }
    auto now = now_ns();
    bool moved = false;
    // The scheduler's workers, then the I/O thread's slot (io_slot()).
    uint64_t io_stuck = 0; // the I/O thread's turn seen in two looks
    for (size_t i = 0; i <= workers_; ++i) {
      auto& s = slots_[i];
      auto e1 = s.epoch.load(std::memory_order_acquire);
      if (e1 != seen[i] || (e1 & 1) != 0)
        moved = true;
      if ((e1 & 1) != 0 && e1 == seen[i]) {
        // One resume since the last look: jobs may wait behind it.
        if (i < workers_)
          wake_thief(i);
        else
          io_stuck = e1;
      }
      seen[i] = e1;
      // Every look samples every worker's run-queue wait: the sample of the
      // look before a resume was first seen precedes the resume's start.
      meter_.sample(i, s.tid.load(std::memory_order_acquire), now);
      if ((e1 & 1) == 0 || reported_[i] == e1)
        continue;
      if (span_epoch_[i] != e1) {
        span_epoch_[i] = e1; // first sight: it began after the last look
        meter_.begin_span(i);
      }
      // A seqlock read: the slot's fields, and the actor's name they point
      // to, are copied first; the epoch read again after them tells whether
      // the worker was in the same resume all along. Only then was the actor
      // (which lives at least until its resume ends) alive while its name was
      // copied. Acquire loads, and the read-modify-write below, keep the second
      // epoch read after the copies.
      auto started = s.started_ns.load(std::memory_order_acquire);
      auto actor = s.actor.load(std::memory_order_acquire);
      auto name_ptr = s.name.load(std::memory_order_acquire);
      auto held = caf::timespan{now - started};
      if (held < threshold_)
        continue; // not yet: no need to copy anything
      // Time the thread waited for a core is the machine's, not the
      // handler's: only what is left counts against the threshold.
      auto waited = caf::timespan{meter_.waited_ns(i, now)};
      if (held - waited < threshold_)
        continue; // preempted, not blocking (yet)
      char name[max_name_length + 1];
      size_t len = 0;
      if (name_ptr != nullptr)
        while (len < max_name_length && name_ptr[len] != '\0') {
          name[len] = name_ptr[len];
          ++len;
        }
      name[len] = '\0';
      // A read-don't-modify-write: its release half keeps the copies above
      // before the re-read (a seqlock reader's fence, which GCC refuses
      // under ThreadSanitizer; this costs one RMW per slow handler seen).
      if (s.epoch.fetch_add(0, std::memory_order_acq_rel) != e1)
        continue; // it moved on while we looked
      reported_[i] = e1;
      reports_.fetch_add(1);
      auto counters = i < workers_ ? metrics_.at(i) : metrics_.io();
      counters->slow_handlers.fetch_add(1, std::memory_order_relaxed);
      events.push_back(
        slow_handler_event{actor, name_ptr != nullptr ? name : "?", i, held,
                           waited, std::nullopt});
    }
    period = moved || poked ? busy_period
                            : std::min<caf::timespan>(period * 2,
                                                      max_idle_period);
    backing_off_.store(period > busy_period, std::memory_order_relaxed);
    // One dump per look, taken while the handlers still hold their threads.
    if (!events.empty() && take_dump_) {
      try {
        auto d = take_dump_();
        for (auto& ev : events)
          ev.dump = d;
      } catch (...) {
        // No memory for a dump: the reports go without it.
      }
    }
    if (io_stuck != 0) {
      std::shared_ptr<const io_rescue_type> rescue;
      {
        std::unique_lock<std::mutex> guard{mtx_};
        rescue = io_rescue_;
      }
      if (rescue && *rescue)
        (*rescue)(io_stuck);
    }
    // The user's callback runs with no lock held: it may replace itself,
    // and workers poking the watchdog meanwhile are not held back.
    for (auto& ev : events)
      report(ev);
    events.clear();
  }
}

blocking_detector* detector_of(caf::actor_system& sys) noexcept {
  auto cfg = dynamic_cast<const runtime_config*>(&sys.config());
  return cfg != nullptr ? cfg->detector_ : nullptr;
}

} // namespace weave::internal
