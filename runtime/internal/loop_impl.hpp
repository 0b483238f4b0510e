#pragma once

// Internal: the shared state of a `loop`, kept alive by the `loop` handle,
// the loop's actor (its behavior and its exit hook) and every future the
// loop still owes (see loop_jobs.hpp). It owns the `loop_context`, so a
// context outlives its loop's end.
//
// Lock: `mtx_` guards the pending list, the flags and the actor handle. No
// user code runs under it: jobs are failed, continuations run, the exception
// handler is called and replaced handlers are destroyed after it is
// released; a posted job whose message CAF drops under it (the actor is gone)
// is kept alive by `dispatch` until the lock is released. Stops requested
// for tasks that take a token (their stop callbacks are user code) happen
// in `fail_all`, without the lock; a task's deadline is handed to the timer
// after the lock is released.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"
#include "caf/behavior.hpp"
#include "caf/event_based_actor.hpp"

#include "runtime/internal/component.hpp"
#include "runtime/internal/deadline_timer.hpp"
#include "runtime/internal/loop_jobs.hpp"
#include "runtime/internal/loop_metrics.hpp"
#include "runtime/loop.hpp"
#include "runtime/loop_context.hpp"

namespace weave::internal {

class loop_impl : public component,
                  public std::enable_shared_from_this<loop_impl> {
public:
  using handler_type = std::function<void(const caf::error&)>;

  loop_impl(std::string name, loop::placement where,
            std::shared_ptr<deadline_timer> timer);

  shutdown_phase phase() const noexcept override {
    return shutdown_phase::loops;
  }

  void begin_shutdown(shutdown_report& report) override;

  void finish_shutdown(steady_clock::time_point deadline,
                       shutdown_report& report) override;

  void start(caf::actor_system& sys);

  /// Sends `j` to the loop (listing `pending`, the job's future, if any);
  /// fails it at once if the loop is stopped. `count` false: weave's own
  /// message (a sleep's wake-up, `call_soon`), not counted as posted.
  bool dispatch(job_ptr j, loop_pending* pending, bool count = true);

  /// Sends `task` to the loop after `delay`, through the runtime's timer
  /// thread. Nothing holds the loop's actor meanwhile (CAF's delayed_send
  /// would keep an ended loop's thread alive until the delay passed); if the
  /// loop is stopped by then, `task` is dropped (its future, listed with the
  /// loop, fails with `shut_down` as the loop ends).
  void wake_after(caf::timespan delay, job_ptr task);

  /// Lists a context future; false if the loop ended.
  bool adopt(loop_pending& p);

  /// Unlinks `p`; true if it was linked (the caller then releases the
  /// list's reference).
  bool unlink_if_linked(loop_pending& p) noexcept;

  void stop();

  void join();

  bool stopped() const;

  /// True once the loop's actor terminated (its context refuses work).
  bool ended() const noexcept {
    return ended_.load(std::memory_order_acquire);
  }

  caf::actor actor() const;

  const std::string& name() const noexcept {
    return name_;
  }

  void set_handler(handler_type h);

  loop::stats_type stats() const;

  void collect_metrics(metrics_snapshot& out) const override;

  /// True on the loop's own thread (`own_thread` placement).
  bool on_own_thread() const noexcept;

  /// True while the calling thread runs one of this loop's functions or
  /// continuations (either placement).
  bool in_own_task() const noexcept;

private:
  caf::behavior make_behavior(caf::event_based_actor* self);

  void run_task(job_ptr& task);

  void report_post_failure(const caf::error& err);

  void link(loop_pending* p) noexcept;

  void unlink(loop_pending* p) noexcept;

  /// Unlinks every pending future (only those that may fail off the loop's
  /// thread unless `with_loop_bound`). Call with `mtx_` held.
  std::vector<loop_pending*> take_pending(bool with_loop_bound);

  /// Fails `items` with `shut_down` and releases the list's references;
  /// returns how many submitted futures it completed (the futures a caller
  /// outside the loop holds). Call without `mtx_`.
  size_t fail_all(std::vector<loop_pending*>& items, const char* why);

  /// The actor's exit hook, on the loop's thread as it ends.
  void on_terminated();

  const std::string name_;
  const loop::placement where_;
  // The runtime's timer, for sleeps (it never refers back to the loop).
  const std::shared_ptr<deadline_timer> timer_;
  loop_context context_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  caf::actor actor_;
  bool stopped_ = false;
  // `stop()` came from the runtime's shutdown (not from an earlier stop).
  bool stopped_by_shutdown_ = false;
  bool terminated_ = false;
  // The runtime gave up on the loop at its shutdown deadline (stuck in a
  // function): join() no longer waits for it.
  bool abandoned_ = false;
  std::atomic<bool> ended_{false};
  loop_pending* head_ = nullptr;
  // The loop's own thread (own_thread placement), for join()'s check.
  std::atomic<std::thread::id> thread_{};
  // Shared, so that a call can copy it under the lock and run it after.
  std::shared_ptr<const handler_type> handler_;
  // The lag of every task run (metrics.hpp); written by the loop's actor.
  loop_recorder metrics_;
  std::atomic<size_t> submitted_{0};
  std::atomic<size_t> posted_{0};
  std::atomic<size_t> post_failures_{0};
  size_t futures_failed_ = 0;
  // Futures failed when the actor ended.
  size_t failed_at_end_ = 0;
};

} // namespace weave::internal
