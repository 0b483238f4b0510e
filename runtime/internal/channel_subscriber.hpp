#pragma once

// Internal: what a channel keeps about one subscribed actor (or loop).

#include <cstddef>
#include <cstdint>
#include <functional>

#include "caf/actor_control_block.hpp"
#include "caf/error.hpp"
#include "caf/message.hpp"
#include "caf/scheduled_actor.hpp"

namespace weave {

template <class T>
class channel_batch;

} // namespace weave

namespace weave::internal {

/// How a subscriber wants its messages, and what to do if it dies. The
/// channel calls these without holding its locks, except the two wrappers,
/// which are weave's own code (they only build a message).
template <class T>
struct subscriber_hooks {
  /// Wraps a batch into the message the subscriber receives.
  std::function<caf::message(channel_batch<T>&&)> wrap_batch;
  /// Makes the end-of-stream message.
  std::function<caf::message()> wrap_end;
  /// Runs once if the subscriber dies while subscribed (may be empty).
  std::function<void(const caf::error&)> on_down;
};

/// One subscriber. Guarded by both of the channel's locks.
template <class T>
struct channel_subscriber {
  uint64_t id = 0;
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

  /// Whether the actor is dying: CAF closes its mailbox, then destroys what
  /// is left in it, then runs its cleanup callbacks (which unsubscribe it).
  bool dying() const noexcept {
    return dead || self->mailbox().closed();
  }
};

} // namespace weave::internal
