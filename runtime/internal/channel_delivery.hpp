#pragma once

// Internal: the messages a channel sends (batches, end-of-stream,
// `channel_writable`) are collected while it holds its locks and sent once
// it has released them, by `deliver`.
//
// Sending can destroy a message at once: CAF destroys what is enqueued into
// a closed mailbox (an actor that is dying). A batch's destructor hands its
// credit — and, if unread, its items — back to the channel, which may send
// again. So `deliver` is re-entrant without recursion: a nested call on the
// same thread only queues its messages, and the outermost call sends them
// all, in order. However many batches bounce off dead mailboxes, the stack
// stays flat.
//
// Sending never throws. If CAF cannot allocate the mailbox element (out of
// memory, twice in a row), the message is destroyed while
// `delivery_failed()` is true, so that a batch knows it never reached its
// subscriber and gives its items back to the channel; the other messages
// are still sent (an end-of-stream or `channel_writable` lost that way is
// not sent again).

#include <cstdint>
#include <utility>
#include <vector>

#include "caf/message.hpp"
#include "caf/actor_control_block.hpp"
#include "caf/message_id.hpp"

namespace weave::internal {

/// One message to send: to `dest`, as an ordinary message or, for a
/// `channel::send`, as the response to its request (`id`).
struct channel_mail {
  channel_mail(caf::strong_actor_ptr dest, caf::message msg,
               caf::message_id id = caf::make_message_id()) noexcept
    : dest(std::move(dest)), msg(std::move(msg)), id(id) {
  }

  caf::strong_actor_ptr dest;
  caf::message msg;
  caf::message_id id;
};

/// Messages to send once the channel's locks are released.
using channel_outbox = std::vector<channel_mail>;

/// Sends the messages of a non-empty outbox; see `deliver`.
void deliver_now(channel_outbox& out) noexcept;

/// True while `deliver` destroys a message it could not send.
bool delivery_failed() noexcept;

/// Sends every message in `out` and leaves it empty. Call without holding
/// any channel lock. (Inline: most calls find nothing to send.)
inline void deliver(channel_outbox& out) noexcept {
  if (!out.empty())
    deliver_now(out);
}

/// A process-wide unique channel id.
uint64_t next_channel_id() noexcept;

} // namespace weave::internal
