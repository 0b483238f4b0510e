#pragma once

/// `send_handle`: what `channel<T>::send(self, x)` returns to an
/// event-based actor — the answer to "is my item in the channel yet?",
/// delivered like the response to `self->request(...)`.
///
///     ch.send(self, x).then([=] { produce_next(); },           // accepted
///                           [=](caf::error& err) { ... });     // closed, ...
///
/// - The value handler takes no arguments and runs, in the actor, once the
///   channel accepted the item: at once if there was room (still as a
///   message: never inside `send`), or when a consumer made room. So an
///   actor that sends its next item from the handler never has more than
///   one item waiting, and never needs `channel_writable` bookkeeping.
/// - The error handler gets `weave::errc::closed` if the channel was closed
///   (or closes while the item waits for room: the item is then destroyed
///   and counted nowhere else), or `weave::errc::full` when the channel's
///   policy refuses to wait (`fail`; `drop_newest`, which discarded the
///   item). Without an error handler, the actor's own error handler runs
///   (like `request(...).then`).
/// - `await` instead of `then` suspends the actor's other messages until
///   the answer arrives (CAF's `request(...).await`).
///
/// Thread-safety: call `then`/`await` from the actor that sent, inside the
/// handler that called `send` (like a request's handle). Items from one
/// actor enter the channel in the order it sent them. A sending actor that
/// dies while its item waits does not take the item back: it enters the
/// channel when there is room.

#include <utility>

#include "caf/event_based_actor.hpp"
#include "caf/message_id.hpp"
#include "caf/response_handle.hpp"

#include "runtime/internal/send_accepted.hpp"
#include "runtime/offload.hpp"

namespace weave {

class send_handle {
public:
  send_handle(caf::event_based_actor* self, caf::message_id request_id)
    : self_(self), request_id_(request_id) {
    // nop
  }

  /// Runs `on_accepted()` once the item is in the channel, or `on_error`
  /// with the reason it never will be.
  template <class F, class OnError>
  void then(F on_accepted, OnError on_error) {
    response().then(accepted(std::move(on_accepted)),
                    internal::weave_error_handler(std::move(on_error),
                                                  "channel::send"));
  }

  template <class F>
  void then(F on_accepted) {
    then(std::move(on_accepted), internal::default_error_handler(self_));
  }

  /// Like `then`, suspending the actor's other messages meanwhile.
  template <class F, class OnError>
  void await(F on_accepted, OnError on_error) {
    response().await(accepted(std::move(on_accepted)),
                     internal::weave_error_handler(std::move(on_error),
                                                   "channel::send"));
  }

  template <class F>
  void await(F on_accepted) {
    await(std::move(on_accepted), internal::default_error_handler(self_));
  }

  /// The request id, e.g. to correlate with logs.
  caf::message_id id() const noexcept {
    return request_id_;
  }

private:
  template <class F>
  static auto accepted(F f) {
    return [f = std::move(f)](internal::send_accepted&) mutable { f(); };
  }

  caf::response_handle<caf::event_based_actor, caf::message, false>
  response() const {
    return {request_id_.response_id(), self_};
  }

  caf::event_based_actor* self_;
  caf::message_id request_id_;
};

} // namespace weave
