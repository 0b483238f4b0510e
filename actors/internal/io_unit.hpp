#pragma once

// Internal: the TCP I/O thread as a CAF execution unit, so that the actor a
// readiness wakes, and the actors its turn wakes in turn, can run on that
// thread instead of waiting for a scheduler worker to wake up.
//
// Why: a readiness used to be a message to the socket's actor on CAF's
// scheduler, whose answer went to the user's actor, whose next request went
// back: every hop from the I/O thread to a parked worker is a wake-up, the
// largest single cost of a small round trip (bench/README.md, TCP). Tokio
// runs a task woken by its I/O driver on the thread that polled it (the
// "LIFO slot"); CAF's middleman runs its brokers on its multiplexer thread.
//
// How: `deliver` enqueues a message with this unit as the sender's context,
// so an actor it makes runnable comes to `exec_later` here instead of to the
// scheduler. The unit keeps one such job, the newest (a second one sends the
// older to the scheduler at once, where a worker takes it in parallel: one
// chain at a time runs here). `run_chain` runs the kept job, then the one
// its turn made runnable, and so on, at most `turns` turns (then the rest
// goes to the scheduler), each turn at most `turn_messages` messages (an
// actor with more goes on on the scheduler). With `turns == 0` nothing runs
// here: every readiness goes to the scheduler, as a message from outside.
//
// What runs here is user code (the handlers of actors that a TCP actor
// answers), so the thread must not block: it is marked so (futures refuse
// to wait on it), and the blocking detector watches its turns like a
// worker's (`blocking_detector::io_slot`; its counters are
// `metrics_snapshot::tcp_io`). A handler that blocks holds
// every socket's readiness until it returns.
//
// Only the I/O thread, between `bind` and `unbind`, keeps jobs: `exec_later`
// called from any other thread (a response promise delivered elsewhere by
// an actor whose last turn ran here keeps this unit as its context) goes to
// the scheduler. That is also why the unit lives as long as the actor system
// (runtime_access::keep_with_system), not as long as the I/O thread.

#include <atomic>
#include <cstddef>

#include "caf/execution_unit.hpp"
#include "caf/fwd.hpp"
#include "caf/message.hpp"

#include "runtime/internal/blocking_detector.hpp"

namespace weave::actors::internal {

class io_unit : public caf::execution_unit {
public:
  /// Messages one turn on the I/O thread handles at most.
  static constexpr size_t turn_messages = 64;

  /// `detector` may be null (CAF's own scheduler policies).
  io_unit(caf::actor_system& sys, size_t turns,
          weave::internal::blocking_detector* detector);

  /// On the I/O thread, before its first `deliver`: jobs made runnable on
  /// this thread are kept here from now on.
  void bind() noexcept;

  /// On the I/O thread, as it ends: hands a kept job to the scheduler; jobs
  /// go to the scheduler from now on.
  void unbind() noexcept;

  /// Sends `msg` to `who` from nobody; if that makes `who` runnable, it is
  /// the next job here (with `turns == 0`: the scheduler's).
  void deliver(const caf::strong_actor_ptr& who, caf::message msg);

  /// Runs the kept job and the chain it starts (see above).
  size_t run_chain() noexcept;

  /// Any thread: hands the kept job, if any, to the scheduler. The TCP
  /// reactor's standby calls it while a turn here is stuck: an actor that
  /// the stuck handler made runnable (a send, then a synchronous wait for
  /// its answer) would otherwise wait for the stuck turn, where on a worker
  /// another worker steals it.
  void release_kept() noexcept;

  void exec_later(caf::resumable* job) override;

private:
  /// Hands `job` (and the reference it carries) to CAF's scheduler.
  void to_scheduler(caf::resumable* job) noexcept;

  const size_t turns_;
  weave::internal::blocking_detector* const detector_;
  weave::internal::blocking_detector::slot* const slot_;
  weave::internal::scheduler_recorder::worker* const metrics_;
  /// The next job to run here (holds a reference); set by the I/O thread
  /// only, taken by it or by `release_kept`.
  std::atomic<caf::resumable*> next_{nullptr};
};

} // namespace weave::actors::internal
