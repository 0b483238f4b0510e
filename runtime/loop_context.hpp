#pragma once

/// `loop_context`: what a function running in a `loop` uses to work
/// asynchronously without blocking the loop: `sleep` (`await
/// asyncio.sleep`), `offload` (`await loop.run_in_executor`), `request` (ask
/// an actor), `call_soon`.
///
/// A submitted or posted function receives it as `loop_context&`;
/// `loop_context::current()` finds it from anywhere inside the loop. Use it
/// on the loop's thread (inside its functions and continuations).
///
/// Futures it makes complete INSIDE the loop: their `then` continuations run
/// there, one at a time with the loop's other work. When the loop ends
/// before such a future completes, the loop completes it with `shut_down`
/// as it ends, still on its own thread; nothing completes on a timer or pool
/// thread, and nothing waits forever.
///
/// Lifetime: the context lives as long as its loop's shared state, which
/// outlives the loop's end: using a context after its loop ended is harmless.
/// `sleep`, `offload` and `request` then return futures that have already
/// failed with `shut_down`, `call_soon` returns false (already once the
/// loop is stopped), and `self()` throws `shut_down`.

#include <chrono>
#include <string>
#include <type_traits>
#include <utility>

#include "caf/actor.hpp"
#include "caf/duration.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/make_counted.hpp"
#include "caf/timespan.hpp"

#include "runtime/blocking_pool.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/loop_jobs.hpp"
#include "runtime/offload.hpp"

namespace weave {

namespace internal {

struct context_access;

} // namespace internal

class loop_context {
public:
  loop_context(const loop_context&) = delete;
  loop_context& operator=(const loop_context&) = delete;

  /// The loop's actor: spawn, send, monitor, as from any actor. Throws
  /// `shut_down` after the loop ended.
  caf::event_based_actor* self() const;

  /// The loop's name.
  const std::string& name() const noexcept;

  /// A future that completes in this loop after `delay`, without blocking it
  /// (`await asyncio.sleep(delay)`). A negative delay is `invalid_argument`;
  /// a delay too long for any clock (`hours::max()`) never fires.
  future<void> sleep(caf::timespan delay);

  template <class Rep, class Period>
  future<void> sleep(std::chrono::duration<Rep, Period> delay) {
    if (internal::negative_or_nan(delay))
      return internal::failed_future<void>(make_error(
        errc::invalid_argument, "loop_context::sleep: negative or NaN delay"));
    return sleep(internal::saturating_duration(delay));
  }

  /// Runs `fn` in this loop later, after the work already queued. False if
  /// the loop is stopped (`fn` would never run: the loop ends first); true
  /// means `fn` runs, even if the loop is stopped right after.
  template <class F>
  bool call_soon(F fn) {
    return post_soon(
      caf::make_counted<internal::post_job<F>>(std::move(fn)));
  }

  /// Offloads `fn` to the default pool; completes in this loop.
  template <class F>
  auto offload(F fn) {
    using t = std::invoke_result_t<F&>;
    auto b = bind<t>();
    if (b.state)
      weave::offload(self_, std::move(fn))
        .then(internal::value_setter<t>(b.state),
              internal::error_setter<t>(b.state));
    return std::move(b.fut);
  }

  /// Offloads `fn` to `pool`; completes in this loop.
  template <class F>
  auto offload(blocking_pool& pool, F fn) {
    using t = std::invoke_result_t<F&>;
    auto b = bind<t>();
    if (b.state)
      weave::offload(self_, pool, std::move(fn))
        .then(internal::value_setter<t>(b.state),
              internal::error_setter<t>(b.state));
    return std::move(b.fut);
  }

  /// Sends a request to `dest`; the reply (of type `R`) completes the future
  /// in this loop, or `errc::timeout` after `timeout` (saturating: a timeout
  /// too long for any clock, like `hours::max()`, means none); an error the
  /// actor answers with is passed on as it is. A negative timeout is
  /// `invalid_argument`.
  template <class R, class Rep, class Period, class... Ts>
  future<R> request(const caf::actor& dest,
                    std::chrono::duration<Rep, Period> timeout, Ts&&... xs) {
    if (internal::negative_or_nan(timeout))
      return internal::failed_future<R>(
        make_error(errc::invalid_argument,
                   "loop_context::request: negative or NaN timeout"));
    auto limit = internal::saturating_duration(timeout);
    auto b = bind<R>();
    if (b.state)
      self_->request(dest,
                     limit >= internal::max_timer_delay
                       ? caf::duration{caf::infinite}
                       : caf::duration{limit},
                     std::forward<Ts>(xs)...)
        .then(internal::value_setter<R>(b.state),
              internal::weave_error_handler(internal::error_setter<R>(b.state),
                                            "loop_context::request: no reply "
                                            "within its timeout"));
    return std::move(b.fut);
  }

  /// The context of the loop the calling thread is running, or null.
  static loop_context* current() noexcept {
    return internal::current_loop_context();
  }

private:
  friend class internal::loop_impl;
  friend struct internal::context_access;

  explicit loop_context(internal::loop_impl& impl) : impl_(impl) {
    // nop
  }

  /// False once the loop ended.
  bool running() const noexcept;

  /// Queues `task` behind the loop's work unless the loop is stopped (then
  /// drops it and returns false), ordered against `stop()`.
  bool post_soon(internal::job_ptr task);

  template <class T>
  struct bound {
    future<T> fut;
    internal::bound_ptr<T> state; // null: the loop ended, `fut` failed
  };

  /// A future owed by this loop (see loop_jobs.hpp).
  template <class T>
  bound<T> bind() {
    auto st = caf::make_counted<internal::bound_state<T>>();
    auto fut = internal::make_future<T>(st);
    if (!internal::adopt_pending(impl_, *st)) {
      st->set_error(internal::loop_ended_error(impl_));
      return {std::move(fut), nullptr};
    }
    return {std::move(fut), std::move(st)};
  }

  internal::loop_impl& impl_;
  caf::event_based_actor* self_ = nullptr; // set when the loop starts
};

namespace internal {

/// weave's own access to a context's internals (channels bind futures to
/// the loop and answer its actor).
struct context_access {
  template <class T>
  static auto bind(loop_context& cx) {
    return cx.bind<T>();
  }

  static caf::event_based_actor* self(loop_context& cx) noexcept {
    return cx.self_;
  }
};

} // namespace internal

} // namespace weave
