#include "actors/internal/io_unit.hpp"

#include <cstdlib>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <utility>

#include "caf/actor_control_block.hpp"
#include "caf/actor_system.hpp"
#include "caf/message_id.hpp"
#include "caf/resumable.hpp"
#include "caf/scheduler/abstract_coordinator.hpp"

#include "runtime/deadline_scope.hpp"
#include "runtime/internal/thread_roles.hpp"

namespace weave::actors::internal {

namespace {

/// The unit bound to the calling thread, if any (a thread-local, so a
/// thread that reuses an ended I/O thread's id is never mistaken for it).
thread_local io_unit* bound_unit = nullptr;

/// This thread's time on a core and its wait for one so far (schedstat's
/// first two fields), or false.
bool read_times(int fd, uint64_t& ran_ns, uint64_t& wait_ns) noexcept {
  if (fd < 0)
    return false;
  char buf[96];
  auto n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  char* end = nullptr;
  ran_ns = std::strtoull(buf, &end, 10);
  if (end == buf)
    return false;
  wait_ns = std::strtoull(end, nullptr, 10);
  return true;
}

} // namespace

io_unit::io_unit(caf::actor_system& sys, size_t turns,
                 weave::internal::blocking_detector* detector,
                 gather_mode gather)
  : caf::execution_unit(&sys), turns_(turns), mode_(gather),
    detector_(detector),
    slot_(detector != nullptr ? detector->io_slot() : nullptr),
    metrics_(detector != nullptr ? detector->metrics().io() : nullptr) {
  gathering_.store(gather == gather_mode::always, std::memory_order_relaxed);
}

io_unit::~io_unit() {
  if (schedstat_fd_ >= 0)
    ::close(schedstat_fd_);
}

bool io_unit::gathering_here() noexcept {
  return bound_unit != nullptr && bound_unit->gathering();
}

void io_unit::bind() noexcept {
  bound_unit = this;
  if (mode_ == gather_mode::automatic && schedstat_fd_ < 0) {
    schedstat_fd_ = ::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    last_look_ = std::chrono::steady_clock::now();
    if (!read_times(schedstat_fd_, last_ran_ns_, last_wait_ns_)
        && schedstat_fd_ >= 0) {
      ::close(schedstat_fd_);
      schedstat_fd_ = -1; // never gathers
    }
  }
  // User handlers may run here: waiting on a future must be refused.
  weave::internal::set_this_thread_must_not_block(true);
  if (slot_ != nullptr)
    slot_->tid.store(static_cast<int32_t>(::syscall(SYS_gettid)),
                     std::memory_order_release);
}

void io_unit::unbind() noexcept {
  bound_unit = nullptr;
  release_kept();
}

void io_unit::sample(std::chrono::steady_clock::time_point now) noexcept {
  if (schedstat_fd_ < 0 || now - last_look_ < sample_every)
    return;
  uint64_t ran = 0;
  uint64_t wait = 0;
  if (!read_times(schedstat_fd_, ran, wait))
    return;
  // Of the time the thread wanted a core (it ran or waited), the part it
  // waited: sleeping in `epoll_wait` counts for nothing either way.
  auto waited = wait - last_wait_ns_;
  auto wanted = waited + (ran - last_ran_ns_);
  last_look_ = now;
  last_ran_ns_ = ran;
  last_wait_ns_ = wait;
  if (waited * contended_share >= wanted) {
    calm_ = 0;
    gathering_.store(true, std::memory_order_relaxed);
  } else if (gathering() && ++calm_ >= calm_windows) {
    calm_ = 0;
    gathering_.store(false, std::memory_order_relaxed);
  }
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
  std::deque<caf::resumable*> jobs;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    jobs.swap(kept_);
  }
  for (auto job : jobs)
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

size_t io_unit::run_chain() noexcept {
  size_t turn = 0;
  // Work after a quiet spell: the watchdog comes back to its busy period
  // (as when a parked worker wakes with work).
  if (detector_ != nullptr && has_kept())
    detector_->activity();
  for (caf::resumable* job; turn < turns_ && (job = take()) != nullptr;
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
