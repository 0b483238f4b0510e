#pragma once

// Internal: what a channel keeps about one subscribed actor (or loop).
//
// The channel holds a strong reference to the actor while it may still send
// it something, and lets go of it once it sent the end (or at the runtime's
// shutdown): a reference must never outlive the actor system, and an actor
// that only the channel kept alive (e.g. one that holds the channel itself)
// would otherwise never be destroyed. The entry stays until CAF reports the
// actor's death, for its `on_down` hook.

#include <cstddef>
#include <cstdint>
#include <functional>

#include "caf/actor_control_block.hpp"
#include "caf/error.hpp"
#include "caf/intrusive_ptr.hpp"
#include "caf/message.hpp"
#include "caf/scheduled_actor.hpp"

namespace weave {

template <class T>
class channel_batch;

} // namespace weave

namespace weave::internal {

template <class T>
class batch_data;

/// How a subscriber wants its messages, and what to do if it dies. The
/// channel calls these without holding its locks, except the two wrappers,
/// which are weave's own code (they only build a message).
template <class T>
struct subscriber_hooks {
  /// Wraps a batch into the message the subscriber receives.
  std::function<caf::message(caf::intrusive_ptr<batch_data<T>>)> wrap_batch;
  /// Makes the end-of-stream message.
  std::function<caf::message()> wrap_end;
  /// Runs once if the subscriber dies while subscribed (may be empty).
  std::function<void(const caf::error&)> on_down;
};

/// One subscriber. Guarded by both of the channel's locks.
template <class T>
struct channel_subscriber {
  uint64_t id = 0;
  /// Null once the channel let go of it (see the header comment).
  caf::strong_actor_ptr actor;
  /// The same actor (kept alive by `actor`), to see whether it is dying.
  caf::scheduled_actor* self = nullptr;
  /// Items it may still be sent.
  size_t credit = 0;
  subscriber_hooks<T> hooks;
  /// A batch was sent and has not come back yet (one at a time keeps the
  /// order).
  bool in_flight = false;
  bool end_sent = false;
  /// Its mailbox closed: it gets nothing more, and leaves when CAF reports
  /// its death (the channel may then close).
  bool dead = false;

  /// Whether the actor is dying (or let go of): CAF closes its mailbox,
  /// then destroys what is left in it, then runs its cleanup callbacks
  /// (which unsubscribe it).
  bool dying() const noexcept {
    return dead || actor == nullptr || self->mailbox().closed();
  }
};

} // namespace weave::internal
