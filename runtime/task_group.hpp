#pragma once

/// `task_group`: structured concurrency for pool jobs, the C++ answer to
/// `asyncio.TaskGroup` and Trio's nursery.
///
///     weave::task_group g{pool};
///     auto users  = g.submit([](weave::stop_token st) { return load(st); });
///     auto orders = g.submit(load_orders);
///     g.wait();            // every task ended; throws the first failure
///     users.get();         // each task's own outcome
///
/// Operations
/// - `submit(fn)`: runs `fn()` or `fn(token)` on the group's pool, like
///   `blocking_pool::submit` (also under a `deadline_scope`), and returns its
///   `future<R>`.
/// - The first task that fails (throws, times out, is answered `shut_down`:
///   any error but `cancelled`, which a task cancelled on its own or by the
///   group ends with) stops the group: every other task is
///   cancelled — a queued one never runs, a running one that takes a
///   `stop_token` is asked to stop (cause `cancelled`, with the pool's grace
///   ladder), one without a token runs to its end. `cancel()` does the same
///   from outside. Tasks submitted after the stop are cancelled at once.
/// - `wait()`: waits until every task submitted so far has ended, then
///   throws `weave::exception` with the first failure's error (none: returns
///   normally; a group stopped only by `cancel()` returns normally too).
///   `first_error()` returns it without throwing.
/// - The destructor ends the group like Trio's nursery: if `wait()` was not
///   called, it cancels every task still queued or running and waits for
///   all of them — nothing started in the group outlives it.
///
/// Blocking: `wait()` and the destructor wait, so a group cannot be made on
/// a thread that must never block (a scheduler thread, a loop's thread):
/// the constructor throws `would_deadlock` there. Inside an actor or a loop,
/// combine futures with `when_all` / `gather` instead.
///
/// Thread-safety: `submit`, `cancel` and `first_error` may be called from
/// any thread, also from inside the group's own tasks (a task may add
/// siblings); `wait()` from one thread at a time. weave's lock is held only
/// to record a task or the first error; tasks and their continuations never
/// run under it. Shutdown: the pool answers the group's tasks like any other
/// (`shut_down`), which the group reports as its failure.

#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "runtime/blocking_pool.hpp"
#include "runtime/error.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/job_stop.hpp"

namespace weave {

namespace internal {

/// What a task group shares with its tasks' completion hooks.
class task_group_state {
public:
  /// Records a task: `wait` waits for it, `cancel` cancels it (neither takes
  /// its value). False if the group was stopped already (the caller
  /// cancels the task).
  bool add(std::function<void()> wait, std::function<bool()> cancel);

  /// A task ended with `err`: the first failure before the group stopped
  /// stops it.
  void failed(const caf::error& err);

  /// Stops the group: cancels every recorded task (outside the lock).
  void stop();

  /// Waits for every recorded task (also those added meanwhile).
  void wait_all();

  caf::error first_error() const;

  bool stopped() const;

private:
  mutable std::mutex mtx_;
  std::vector<std::function<void()>> waits_;
  std::vector<std::function<bool()>> cancels_;
  caf::error first_;
  bool stopped_ = false;
};

} // namespace internal

class task_group {
public:
  /// A group whose tasks run on `pool`. Throws `would_deadlock` on a thread
  /// that must never block.
  explicit task_group(blocking_pool& pool);

  /// Cancels what still runs unless `wait()` returned, then waits for all.
  ~task_group();

  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  /// Runs `fn` in the group; see the header comment.
  template <class F>
  auto submit(F fn) -> future<internal::job_result_t<F>> {
    using r = internal::job_result_t<F>;
    if (state_->stopped()) {
      // Never started: the group has stopped.
      promise<r> p;
      auto refused = p.get_future();
      p.set_error(make_error(errc::cancelled, "task_group: the group was "
                                              "stopped before the task was "
                                              "submitted"));
      return refused;
    }
    auto f = pool_.submit(std::move(fn));
    auto& st = internal::state_of(f);
    // Copies of the future: waiting on one or cancelling it takes nothing.
    auto waiter = [f]() mutable { f.wait(); };
    auto canceller = [f]() mutable { return f.cancel(); };
    if (!state_->add(waiter, canceller)) {
      canceller();
      return f;
    }
    // The first failure stops the siblings as soon as it happens, on the
    // thread that completes the task, with no lock held.
    st->on_complete(internal::callback{[group = state_, st] {
      if (auto& err = st->error())
        group->failed(err);
    }});
    return f;
  }

  /// Stops the group: cancels its tasks (see the header comment).
  void cancel() {
    state_->stop();
  }

  /// Waits for every task; throws the first failure (see above).
  void wait();

  /// The first failure, or no error.
  caf::error first_error() const {
    return state_->first_error();
  }

private:
  blocking_pool& pool_;
  std::shared_ptr<internal::task_group_state> state_;
  bool waited_ = false;
};

} // namespace weave
