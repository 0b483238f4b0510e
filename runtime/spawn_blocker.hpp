#pragma once

/// `spawn_blocker`: one long blocking function on a thread of its own, the
/// C++ answer to `threading.Thread(target=fn)`.
///
///     auto b = spawn_blocker(rt, [] { return crunch(); }, "cruncher");
///     b.get();                      // plain thread: wait for the result
///     self->monitor(b.actor());     // or watch it like any actor
///
///     spawn_blocker(self, fn)       // inside an actor: like offload, the
///       .then([=](int v) { ... });  // result arrives as a response message
///
/// The function runs on a detached CAF actor (its own OS thread, named after
/// `name`). Its outcome is delivered exactly once: as the future's value or
/// error (plain callers), or as a response (actors). An exception becomes a
/// `job_failed` error carrying its message, and the actor exits with that
/// same error as its exit reason (monitors see it in their `down_msg`); it
/// never crashes the program. Runtime shutdown waits for blockers until its
/// deadline, then abandons and counts them: a blocker still running then is
/// answered with `shut_down` at the deadline (its caller does not wait for
/// the function to return), its thread is left to finish and counted, and
/// its late result is dropped and counted
/// (`thread_census::late_results_dropped()`). After shutdown has begun,
/// `spawn_blocker` fails at once with `shut_down` (the actor handle is then
/// invalid).
///
/// A function may take a `weave::stop_token`: then `cancel()` (the future's
/// or the actor form's handle) asks it to stop while it runs (cause
/// `cancelled`), and so does the runtime's shutdown (cause `shut_down`)
/// before it waits for blockers; a stopped blocker's outcome is the cause.
/// A blocker has its own thread, so there is no grace period and nothing
/// to quarantine: one that ignores its token is abandoned at the shutdown
/// deadline as above.
///
/// Thread-safety: the plain form may be called from any thread; the actor
/// form from inside the calling actor's handlers.

#include <string>
#include <type_traits>
#include <utility>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"
#include "caf/blocking_actor.hpp"
#include "caf/spawn_options.hpp"

#include "runtime/future.hpp"
#include "runtime/offload.hpp"
#include "runtime/runtime.hpp"
#include "runtime/this_thread.hpp"

namespace weave {

/// What the plain form of `spawn_blocker` returns.
template <class T>
class blocker {
public:
  blocker(caf::actor handle, future<T> result)
    : actor_(std::move(handle)), result_(std::move(result)) {
    // nop
  }

  /// The blocker's actor, to monitor or link. Invalid if it never started.
  const caf::actor& actor() const noexcept {
    return actor_;
  }

  /// The blocker's outcome.
  future<T>& result() noexcept {
    return result_;
  }

  /// Waits for the outcome: `result().get()`.
  T get() {
    return result_.get();
  }

private:
  caf::actor actor_;
  future<T> result_;
};

/// What the actor form of `spawn_blocker` returns: an offload handle (then /
/// await / receive) plus the blocker's actor.
template <class Self, class T>
class blocker_handle : public offload_handle<Self, T> {
public:
  blocker_handle(offload_handle<Self, T> handle, caf::actor a)
    : offload_handle<Self, T>(std::move(handle)), actor_(std::move(a)) {
    // nop
  }

  const caf::actor& actor() const noexcept {
    return actor_;
  }

private:
  caf::actor actor_;
};

namespace internal {

/// Starts `j` on a detached actor of its own; see the header comment.
caf::actor launch_blocker(runtime& rt, job_ptr j, std::string name);

} // namespace internal

/// Plain form: runs `fn` on a new detached actor named `name`.
template <class F>
auto spawn_blocker(runtime& rt, F fn, std::string name = "blocker")
  -> blocker<internal::job_result_t<F>> {
  using t = internal::job_result_t<F>;
  auto j = caf::make_counted<internal::function_job<t, F>>(std::move(fn));
  auto fut = internal::make_future<t>(j);
  auto handle = internal::launch_blocker(rt, j, std::move(name));
  return {std::move(handle), std::move(fut)};
}

/// Actor form: runs `fn` on a new detached actor; the outcome comes back to
/// `self` as a response (see offload.hpp for then / await / receive).
template <class Self, class F>
auto spawn_blocker(Self* self, F fn, std::string name = "blocker") {
  using t = internal::job_result_t<F>;
  auto rid = self->new_request_id(caf::message_priority::normal);
  auto j = caf::make_counted<internal::actor_job_impl<t, F>>(
    self->ctrl(), rid.response_id(), std::move(fn));
  offload_handle<Self, t> handle{self, rid, j};
  auto a = internal::launch_blocker(runtime::from(self->system()), j,
                                    std::move(name));
  return blocker_handle<Self, t>{std::move(handle), std::move(a)};
}

} // namespace weave
