#include "actors/internal/io_unit.hpp"

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

} // namespace

io_unit::io_unit(caf::actor_system& sys, size_t turns,
                 weave::internal::blocking_detector* detector)
  : caf::execution_unit(&sys), turns_(turns), detector_(detector),
    slot_(detector != nullptr ? detector->io_slot() : nullptr),
    metrics_(detector != nullptr ? detector->metrics().io() : nullptr) {
  // nop
}

void io_unit::bind() noexcept {
  bound_unit = this;
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

void io_unit::release_kept() noexcept {
  if (auto job = next_.exchange(nullptr, std::memory_order_acq_rel))
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
  // The newest job runs next here; an older one goes where a worker can
  // take it (one chain at a time on this thread).
  if (auto older = next_.exchange(job, std::memory_order_acq_rel))
    to_scheduler(older);
}

void io_unit::to_scheduler(caf::resumable* job) noexcept {
  system().scheduler().enqueue(job);
}

size_t io_unit::run_chain() noexcept {
  size_t turn = 0;
  // Work after a quiet spell: the watchdog comes back to its busy period
  // (as when a parked worker wakes with work).
  if (next_.load(std::memory_order_acquire) != nullptr && detector_ != nullptr)
    detector_->activity();
  for (caf::resumable* job;
       (job = next_.exchange(nullptr, std::memory_order_acq_rel)) != nullptr;
       ++turn) {
    if (turn == turns_) {
      to_scheduler(job); // the rest of the chain runs on the scheduler
      return turn;
    }
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
        // More messages than one turn here takes: on a worker, while this
        // thread goes back to its sockets.
        to_scheduler(job);
        break;
      default:
        // done, awaiting_message (and shutdown_execution_unit, which only
        // the scheduler's own jobs return): the reference goes.
        caf::intrusive_ptr_release(job);
        break;
    }
  }
  return turn;
}

} // namespace weave::actors::internal
