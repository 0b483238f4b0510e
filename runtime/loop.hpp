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
/// - `post(fn)`: fire-and-forget; posted functions run in FIFO order per
///   posting thread. An exception escaping one is reported to the loop's
///   exception handler (by default, one line on stderr) and counted; the loop
///   keeps running. Returns false if the loop is stopped.
/// - `request<R>(actor, timeout, args...)` → `future<R>`: a plain thread asks
///   any actor through the loop (no `scoped_actor` per call).
/// - `stop()` from any thread, idempotent: work accepted before it runs
///   first (like `call_soon_threadsafe(loop.stop)`), then the loop ends and
///   every future still pending (work that was finishing later) completes
///   with `shut_down`. After `stop()`, `submit` returns a future that has
///   already failed with `shut_down` and `post` returns false.
/// - `join()` waits until the loop has ended. The destructor stops and joins
///   (only stops, when it runs on the loop's own thread).
///   The runtime's shutdown stops every loop first.
///
/// Thread-safety: every member may be called from any thread, except `join()`
/// and the destructor, which must not run on the loop's own thread. The
/// submission of `fn` happens-before `fn` runs, which happens-before the
/// future completes.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "caf/actor.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/timespan.hpp"

#include "runtime/blocking_pool.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/offload.hpp"

namespace weave {

class runtime;
class loop_context;

namespace internal {

class loop_impl;

/// The message that carries work into a loop.
struct loop_message {
  job_ptr task;
};

/// Loop tasks that may finish later sit in an intrusive list of their loop,
/// so that stopping the loop can fail them (nobody waits forever).
class loop_task {
public:
  virtual ~loop_task() = default;
  virtual job& as_job() noexcept = 0;
  /// Completes the task's future with `reason`; false if already complete.
  virtual bool fail(caf::error reason) = 0;
  /// Runs `cb` once the task's future completes.
  virtual void on_done(callback cb) = 0;
  loop_task* prev_pending = nullptr;
  loop_task* next_pending = nullptr;
  bool linked = false;
};

/// The loop context of the calling thread while it runs a loop's work.
loop_context* current_loop_context() noexcept;

template <class F>
decltype(auto) invoke_with_context(F& fn, loop_context& cx) {
  if constexpr (std::is_invocable<F&, loop_context&>::value)
    return fn(cx);
  else
    return fn();
}

template <class F>
struct submit_result {
  using raw = std::conditional_t<std::is_invocable<F&, loop_context&>::value,
                                 std::invoke_result<F&, loop_context&>,
                                 std::invoke_result<F&>>;
  using type = typename raw::type;
};

template <class T, class F>
class submit_job final : public future_state<T>, public loop_task {
public:
  explicit submit_job(F fn) : fn_(std::move(fn)) {
  }

  job& as_job() noexcept override {
    return *this;
  }

  bool fail(caf::error reason) override {
    this->try_drop();
    return this->set_error(std::move(reason));
  }

  void on_done(callback cb) override {
    this->on_complete(std::move(cb));
  }

  bool run() noexcept override {
    using r0 = typename submit_result<F>::type;
    auto& cx = *current_loop_context();
    if constexpr (is_future<r0>::value) {
      try {
        auto inner = invoke_with_context(fn_, cx);
        caf::intrusive_ptr<submit_job> self{this};
        inner.then([self](result<T> res) mutable {
          fulfil(*self, std::move(res));
        });
        return true;
      } catch (...) {
        this->failure = current_exception_error();
        this->set_error(this->failure);
        return false;
      }
    } else {
      auto call = [this, &cx] { return invoke_with_context(fn_, cx); };
      return fulfil_with(*this, call);
    }
  }

private:
  F fn_;
};

template <class F>
class post_job final : public job {
public:
  explicit post_job(F fn) : fn_(std::move(fn)) {
  }

  bool run() noexcept override {
    try {
      invoke_with_context(fn_, *current_loop_context());
      mark_finished();
      return true;
    } catch (...) {
      failure = current_exception_error();
      mark_finished();
      return false;
    }
  }

  bool drop(caf::error) noexcept override {
    // A posted function has nobody to tell.
    return true;
  }

private:
  F fn_;
};

template <class T>
auto value_setter(promise<T> p) {
  if constexpr (std::is_void<T>::value)
    return [p]() mutable { p.set_value(); };
  else
    return [p](T x) mutable { p.set_value(std::move(x)); };
}

template <class T>
auto error_setter(promise<T> p) {
  return [p](caf::error& err) mutable { p.set_error(std::move(err)); };
}

} // namespace internal

/// What a submitted or posted function may use to work asynchronously inside
/// its loop. Valid only on the loop's thread, while the loop runs.
class loop_context {
public:
  loop_context(caf::event_based_actor* self, internal::loop_impl* impl)
    : self_(self), impl_(impl) {
    // nop
  }

  /// The loop's actor: spawn, send, monitor, as from any actor.
  caf::event_based_actor* self() const noexcept {
    return self_;
  }

  /// The loop's name.
  const std::string& name() const noexcept;

  /// A future that completes in this loop after `delay`, without blocking it
  /// (`await asyncio.sleep(delay)`).
  future<void> sleep(caf::timespan delay);

  template <class Rep, class Period>
  future<void> sleep(std::chrono::duration<Rep, Period> delay) {
    return sleep(std::chrono::duration_cast<caf::timespan>(delay));
  }

  /// Runs `fn` in this loop later, after the work already queued.
  template <class F>
  void call_soon(F fn);

  /// Offloads `fn` to the default pool; completes in this loop.
  template <class F>
  auto offload(F fn) {
    using t = std::invoke_result_t<F&>;
    promise<t> p;
    auto f = p.get_future();
    weave::offload(self_, std::move(fn))
      .then(internal::value_setter<t>(p), internal::error_setter<t>(p));
    return f;
  }

  /// Offloads `fn` to `pool`; completes in this loop.
  template <class F>
  auto offload(blocking_pool& pool, F fn) {
    using t = std::invoke_result_t<F&>;
    promise<t> p;
    auto f = p.get_future();
    weave::offload(self_, pool, std::move(fn))
      .then(internal::value_setter<t>(p), internal::error_setter<t>(p));
    return f;
  }

  /// Sends a request to `dest`; the reply (of type `R`) completes the future
  /// in this loop.
  template <class R, class... Ts>
  future<R> request(const caf::actor& dest, caf::timespan timeout,
                    Ts&&... xs) {
    promise<R> p;
    auto f = p.get_future();
    self_->request(dest, timeout, std::forward<Ts>(xs)...)
      .then(internal::value_setter<R>(p), internal::error_setter<R>(p));
    return f;
  }

  /// The context of the loop the calling thread is running, or null.
  static loop_context* current() noexcept {
    return internal::current_loop_context();
  }

private:
  caf::event_based_actor* self_;
  internal::loop_impl* impl_;
};

class loop {
public:
  enum placement { own_thread, shared };

  /// Counters; a snapshot.
  struct stats_type {
    size_t submitted = 0;
    size_t posted = 0;
    /// Posted functions that threw.
    size_t post_failures = 0;
    /// Futures failed with `shut_down` when the loop stopped.
    size_t futures_failed = 0;
  };

  /// Starts a loop named `name` (also its thread's name with `own_thread`).
  /// Throws `shut_down` if the runtime is shutting down.
  explicit loop(runtime& rt, std::string name = "loop",
                placement where = own_thread);

  /// Stops the loop and waits for it to end.
  ~loop();

  loop(const loop&) = delete;
  loop& operator=(const loop&) = delete;

  /// Runs `fn` in the loop; see the header comment.
  template <class F>
  auto submit(F fn) {
    using r0 = typename internal::submit_result<F>::type;
    using t = typename internal::unwrap_future<r0>::type;
    auto j = caf::make_counted<internal::submit_job<t, F>>(std::move(fn));
    auto fut = internal::make_future<t>(j);
    dispatch(j, j.get());
    return fut;
  }

  /// Runs `fn` in the loop, fire-and-forget; false if the loop is stopped.
  template <class F>
  bool post(F fn) {
    return dispatch(caf::make_counted<internal::post_job<F>>(std::move(fn)),
                    nullptr);
  }

  /// Asks `dest` through the loop; the reply completes the future.
  template <class R, class... Ts>
  future<R> request(caf::actor dest, caf::timespan timeout, Ts... xs) {
    return submit([=](loop_context& cx) {
      return cx.request<R>(dest, timeout, xs...);
    });
  }

  /// Stops the loop (idempotent, any thread).
  void stop();

  /// Waits until the loop has ended. Refused on the loop's own thread.
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
  bool dispatch(internal::job_ptr j, internal::loop_task* task);

  std::shared_ptr<internal::loop_impl> impl_;
};

template <class F>
void loop_context::call_soon(F fn) {
  self_->send(self_, internal::loop_message{
                       caf::make_counted<internal::post_job<F>>(std::move(fn))});
}

} // namespace weave

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(weave::internal::loop_message)
