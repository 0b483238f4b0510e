#pragma once

/// `channel_stats`: a snapshot of a channel's counters (`channel::stats()`),
/// taken under the channel's locks, so consistent with itself.

#include <cstddef>

namespace weave {

/// A snapshot of a channel's counters.
struct channel_stats {
  size_t capacity = 0;
  /// Items queued now.
  size_t depth = 0;
  /// The most items ever queued at once: never above `capacity`, except for
  /// items a dead subscriber returned.
  size_t high_water = 0;
  /// Items accepted (`put`, `try_put`, `offer`).
  size_t puts = 0;
  /// Items taken by consumers (threads, or actors in batches); items a dead
  /// subscriber returned count once, when taken again.
  size_t gets = 0;
  /// Items discarded by `drop_newest` (the new one) or `drop_oldest` (the
  /// evicted one).
  size_t drops = 0;
  /// Puts refused with `full` by the `fail` policy; each item stayed with
  /// its caller.
  size_t refused = 0;
  /// Items that went back to the front of the queue: unread batches of a
  /// subscriber that died (or that could not be sent), items a `consume`
  /// did not reach because its `on_item` threw, and items a `get` could not
  /// move out.
  size_t requeued = 0;
  /// Items of batches that a live subscriber let go without looking at them
  /// (no handler called `items()`, e.g. none matched the message), and items
  /// that could not go back to the queue for want of memory.
  size_t lost = 0;
  /// Batch messages sent to actors.
  size_t batches = 0;
  /// Threads blocked in `put` now.
  size_t blocked_producers = 0;
  /// Threads blocked in `get` now.
  size_t blocked_consumers = 0;
  /// Actors told `full` by `offer` that wait for `channel_writable`.
  size_t waiting_writers = 0;
  /// Items of `send` calls (actors, loops) waiting for room now; they are
  /// not counted in `depth`.
  size_t parked_sends = 0;
  /// Actors (and loops) subscribed now.
  size_t subscribers = 0;
};

} // namespace weave
