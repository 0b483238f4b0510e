#pragma once

/// `loop`: an event loop that plain threads can feed, the C++ answer to
/// `new_event_loop()` run in a `Thread` plus `run_coroutine_threadsafe`,
/// `call_soon_threadsafe` and `loop.stop()`.
///
///     weave::loop lp{rt, "io-loop"};                     // its own thread
///     auto f = lp.submit([](weave::loop_context& cx) {   // any thread
///       return cx.sleep(2s).then([](weave::result<void>) { return 42; });
///     });
///     f.get();                                           // 42, after 2 s
///     lp.post([] { std::puts("fire and forget"); });
///     lp.stop(); lp.join();
///
/// A loop is an event-based actor. With `loop::own_thread` (the default) it
/// is a detached actor with an OS thread of its own, named after the loop —
/// the tutorial's "event loop in a separate thread"; with `loop::shared` it
/// runs on CAF's scheduler like any actor. Either way, its functions run one
/// at a time, never concurrently, inside the actor.
///
/// - `submit(fn)` → `future<T>`. `fn` takes no argument or a `loop_context&`.
///   If it returns a value, the future completes with it. To finish later —
///   the way a submitted coroutine awaits — `fn` returns a `future<T>`
///   (typically from `cx.sleep`, `cx.offload`, `cx.request` or a
///   `promise<T>` it completes from a handler), and the submit's future
///   completes only when that one does. Futures made by `loop_context`
///   complete inside the loop, so their `then` callbacks run in the loop.
/// - `fn` may also take a `weave::stop_token`: `(stop_token)` or
///   `(loop_context&, stop_token)`, in that order (the first form that fits
///   of `(loop_context&, stop_token)`, `(loop_context&)`, `(stop_token)`,
///   `()` is used). Then a stop reaches it while it runs AND while it
///   finishes later: `cancel()` on the submit's future, the deadline of a
///   `deadline_scope` active at `submit`, and the loop's end request the
///   stop, with cause `cancelled`, `timeout` or `shut_down` (the first
///   request's cause wins). Once a stop was requested before the task's
///   outcome was there, the submit's future completes with the stop's cause,
///   whatever `fn` (or the future it returned) produced, as soon as that
///   outcome is there — a task finishing later ends when its own future
///   does, so its continuations should look at `st.stop_requested()` (or
///   register a `stop_callback`) and finish early. The token's callbacks run
///   on the thread that requests the stop: the caller of `cancel()`, the
///   runtime's timer thread for a deadline, the loop's thread as it ends (or
///   the shutdown's thread for a loop abandoned at the shutdown deadline).
///   A function without a token costs nothing more and ignores deadlines,
///   as before.
/// - `cancel()` on the submit's future: while the task is queued, it never
///   runs and the future completes with `cancelled` (true), with or without
///   a token. Once it started, with a token and until its outcome is there
///   (its function runs on the loop, or it finishes later): its stop is
///   requested (true; the future completes with the stop's cause once the
///   task's own outcome is there, at once if a stop callback completes it).
///   False once the future completed, and for a started task without a
///   token. A token task whose deadline passes while it is queued never
///   runs: its future completes with `timeout`. Inside the task,
///   `current_deadline()` is its deadline, so what it submits or offloads
///   while running inherits it.
/// - `post(fn)`: fire-and-forget; posted functions run in FIFO order per
///   posting thread. An exception escaping one is reported to the loop's
///   exception handler (by default, one line on stderr) and counted; the loop
///   keeps running. Returns false if the loop is stopped.
/// - `request<R>(actor, timeout, args...)` → `future<R>`: a plain thread asks
///   any actor through the loop (no `scoped_actor` per call).
/// - `stop()` from any thread, idempotent: work accepted before it runs
///   first (like `call_soon_threadsafe(loop.stop)`), then the loop ends and
///   every future still pending (work that was finishing later, and the
///   futures its context made) completes with `shut_down`, on the loop's own
///   thread as it ends; a pending task that takes a token first has its
///   stop requested with cause `shut_down` (so its stop callbacks and
///   continuations can tell why). After `stop()`, `submit` returns a future that has
///   already failed with `shut_down` and `post` returns false.
/// - `join()` waits until the loop has ended: once it returns, every
///   continuation of a context future has run — or until the runtime's
///   shutdown has abandoned the loop (stuck in a function at the deadline),
///   so that neither `join()` nor the destructor hangs after shutdown. The destructor stops and
///   joins (inside the loop, or on a thread that must not block, it only
///   stops).
///
/// Shutdown: the runtime's shutdown stops every loop first and waits for it
/// until the deadline. A loop still inside a function then is abandoned: its
/// thread is counted as abandoned in the report, its submitted futures fail
/// with `shut_down` at once, and it ends by itself whenever the function
/// returns. The report counts only the futures the shutdown failed, not
/// those an earlier `stop()` failed.
///
/// Thread-safety: every member may be called from any thread; `join()` is
/// refused inside the loop and on threads that must not block. The
/// submission of `fn` happens-before `fn` runs, which happens-before the
/// future completes. The loop's shared state holds a lock that no user code
/// (functions, continuations, the exception handler, destructors of jobs)
/// ever runs under.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "caf/actor.hpp"
#include "caf/timespan.hpp"

#include "runtime/deadline_scope.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/loop_jobs.hpp"
#include "runtime/loop_context.hpp"

namespace weave {

class runtime;

class loop {
public:
  enum placement { own_thread, shared };

  /// Counters; a snapshot.
  struct stats_type {
    size_t submitted = 0;
    size_t posted = 0;
    /// Posted functions that threw.
    size_t post_failures = 0;
    /// Submitted futures failed with `shut_down` when the loop ended (or at
    /// a shutdown deadline it missed).
    size_t futures_failed = 0;
  };

  /// Starts a loop named `name` (also its thread's name with `own_thread`).
  /// Throws `shut_down` if the runtime is shutting down.
  explicit loop(runtime& rt, std::string name = "loop",
                placement where = own_thread);

  /// Stops the loop and waits for it to end, except where waiting would
  /// deadlock or block a thread that must not block: inside the loop itself
  /// (its thread, or its own task on a scheduler thread) and on any other
  /// thread that must not block, it only stops; the loop then ends by itself
  /// once its current function returns.
  ~loop();

  loop(const loop&) = delete;
  loop& operator=(const loop&) = delete;

  /// Runs `fn` (taking nothing, `loop_context&`, `stop_token` or both) in
  /// the loop; see the header comment.
  template <class F>
  auto submit(F fn) {
    internal::check_loop_fn<F>();
    using r0 = typename internal::submit_result<F>::type;
    using t = typename internal::unwrap_future<r0>::type;
    auto j = caf::make_counted<internal::submit_job<t, F>>(std::move(fn));
    auto fut = internal::make_future<t>(j);
    if constexpr (internal::loop_takes_token_v<F>)
      j->deadline = current_deadline(); // a deadline scope's, if any
    internal::loop_pending* pending = j.get();
    dispatch(std::move(j), pending);
    return fut;
  }

  /// Runs `fn` in the loop, fire-and-forget; false if the loop is stopped.
  template <class F>
  bool post(F fn) {
    return dispatch(caf::make_counted<internal::post_job<F>>(std::move(fn)),
                    nullptr);
  }

  /// Asks `dest` through the loop; the reply completes the future (see
  /// `loop_context::request` for the timeout).
  template <class R, class Rep, class Period, class... Ts>
  future<R> request(caf::actor dest, std::chrono::duration<Rep, Period> timeout,
                    Ts... xs) {
    return submit([=](loop_context& cx) {
      return cx.request<R>(dest, timeout, xs...);
    });
  }

  /// Stops the loop (idempotent, any thread).
  void stop();

  /// Waits until the loop has ended. Refused with `would_deadlock` inside
  /// the loop itself and on any thread that must not block (a scheduler
  /// thread), like `future::get`.
  void join();

  /// True once `stop()` was called (or the runtime shut down).
  bool stopped() const noexcept;

  /// The loop's actor; invalid after the loop ended.
  caf::actor actor() const;

  const std::string& name() const noexcept;

  /// Replaces the handler for exceptions escaping posted functions. It runs
  /// on the loop's thread.
  void set_exception_handler(std::function<void(const caf::error&)> handler);

  stats_type stats() const;

private:
  /// Sends `j` to the loop; fails it at once if the loop is stopped.
  bool dispatch(internal::job_ptr j, internal::loop_pending* pending);

  std::shared_ptr<internal::loop_impl> impl_;
};

} // namespace weave
