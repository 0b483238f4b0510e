#include "runtime/internal/deadline_timer.hpp"

#include <algorithm>

#include "caf/actor_system.hpp"
#include "caf/blocking_actor.hpp"
#include "caf/spawn_options.hpp"

#include "runtime/error.hpp"
#include "runtime/internal/spawn_guard.hpp"
#include "runtime/internal/thread_activity.hpp"
#include "runtime/this_thread.hpp"

namespace weave::internal {

deadline_timer::deadline_timer(caf::actor_system& sys) : sys_(sys) {
  // nop
}

void deadline_timer::arm(job_ptr j) {
  std::vector<entry> swept; // released after unlocking
  std::unique_lock<std::mutex> guard{mtx_};
  if (stopped_)
    return;
  if (!started_) {
    // Spawned under the lock (no user code runs in a spawn): shutdown,
    // which takes this lock first, never misses the thread.
    started_ = true;
    auto self = shared_from_this();
    spawn_guard sg;
    sys_.spawn<caf::hidden>([self](caf::blocking_actor*) { self->run(); });
  }
  if (heap_.size() >= 2 * live_after_sweep_ + sweep_floor) {
    auto keep = std::partition(heap_.begin(), heap_.end(), [](const entry& e) {
      return e.what->timer_entry_live();
    });
    swept.assign(std::make_move_iterator(keep),
                 std::make_move_iterator(heap_.end()));
    heap_.erase(keep, heap_.end());
    std::make_heap(heap_.begin(), heap_.end(), later);
    live_after_sweep_ = heap_.size();
  }
  auto at = j->deadline;
  heap_.push_back(entry{at, std::move(j)});
  std::push_heap(heap_.begin(), heap_.end(), later);
  if (heap_.front().at == at)
    cv_.notify_one(); // a new earliest deadline
  guard.unlock();
}

void deadline_timer::run() {
  set_this_thread_name("weave-timer");
  set_thread_role(thread_role::service);
  std::vector<job_ptr> due;
  std::unique_lock<std::mutex> guard{mtx_};
  while (!stopped_) {
    if (heap_.empty()) {
      cv_.wait(guard);
      continue;
    }
    auto now = steady_clock::now();
    // A copy: while this waits, arm() may move the heap's storage.
    auto next = heap_.front().at;
    if (now < next) {
      cv_.wait_until(guard, next);
      continue;
    }
    while (!heap_.empty() && heap_.front().at <= now) {
      std::pop_heap(heap_.begin(), heap_.end(), later);
      due.emplace_back(std::move(heap_.back().what));
      heap_.pop_back();
    }
    guard.unlock();
    for (auto& j : due)
      j->cancel_with(make_error(errc::timeout,
                                "no worker started the job before its "
                                "timeout"));
    due.clear();
    guard.lock();
  }
  ended_ = true;
  ended_cv_.notify_all();
}

void deadline_timer::begin_shutdown(shutdown_report&) {
  std::vector<entry> rest; // released after unlocking
  {
    std::unique_lock<std::mutex> guard{mtx_};
    stopped_ = true;
    rest.swap(heap_);
  }
  cv_.notify_all();
}

void deadline_timer::finish_shutdown(steady_clock::time_point deadline,
                                     shutdown_report& report) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (!started_)
    return;
  // The thread is counted by the runtime (CAF's count of detached threads)
  // if it does not end in time.
  if (ended_cv_.wait_until(guard, deadline, [this] { return ended_; }))
    ++report.threads_joined;
}

} // namespace weave::internal
