#pragma once

// Internal: the bounded queue inside a channel, and what plain threads do
// with it (put, get). `channel_fanout` adds the subscribers on top, and
// `channel_core` the rest (offer, statistics, the runtime's shutdown).
//
// The queue has two sides, each with its own lock, so that producers and
// consumers on different cores do not meet at one lock per item: producers
// append to `in_`; consumers take from `out_` and, when it runs empty, move
// all of `in_` over at once (this took thread → thread hand-off from ~8 M to
// ~45 M items/s on the development machine). Lock order: `out_mtx_`, then
// `in_mtx_`. Capacity is enforced on the sum through counters: `puts_` and
// `returned_` (items added, written under `in_mtx_`) and `removed_`
// (written by consumers).
//
// Waking producers: a producer that finds the queue full announces it
// (`wake_wanted_`, and an entry in `writers_` for an actor) and looks once
// more; a consumer that removes an item reads the flag (seq_cst on both
// sides: one of them sees the other) and, only if it is set, wakes every
// waiting thread and tells every waiting actor. So a producer is woken by
// the first slot that frees, and a consumer pays one atomic load per item
// while nobody waits.
//
// A put or get given a stop token arms it only once it is about to wait
// (see stop_notifier.hpp; its callback takes `in_mtx_`, runs no user code).
//
// No user code runs under the locks: messages go into a `channel_outbox`
// that `deliver` sends after the locks are released; items are stored so
// that moving them around and destroying what is left runs no user code
// (channel_slot.hpp), and an item leaves the channel (taken, evicted by
// `drop_oldest`) to be destroyed after the locks. An item is built (moved or
// copied in) under the lock, since a put takes it only once accepted.
//
// Exceptions: every operation first does what may fail (allocating room in
// a ring, building an item) and then commits with steps that cannot throw,
// so an exception leaves the queue as it was. Notifications that fail for
// want of memory (telling waiting actors) stay pending and are retried by
// the next item that leaves the queue.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "caf/make_message.hpp"

#include "runtime/channel.hpp"
#include "runtime/internal/channel_delivery.hpp"
#include "runtime/internal/channel_ring.hpp"
#include "runtime/internal/channel_slot.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/stop_notifier.hpp"

namespace weave::internal {

template <class T>
class channel_queue {
public:
  using time_point = steady_clock::time_point;
  using slot_traits = channel_slot<T>;
  using slot = channel_slot_t<T>;

  channel_queue(size_t capacity, overflow policy)
    : id_(next_channel_id()), capacity_(capacity), policy_(policy) {
  }

  virtual ~channel_queue() = default;

  channel_queue(const channel_queue&) = delete;
  channel_queue& operator=(const channel_queue&) = delete;

  uint64_t id() const noexcept {
    return id_;
  }

  // -- producers --------------------------------------------------------------

  /// Puts `x`, moving from it only if it is accepted. If `wait`, waits for
  /// room until `until` (none: for ever), or until `stop` (if given) is
  /// stopped: then returns `stopped`.
  template <class U>
  channel_status put(U&& x, std::optional<time_point> until, bool wait,
                     const stop_token* stop = nullptr) {
    typename slot_traits::holder evicted; // destroyed after the lock
    stop_notifier hook; // deregistered after the lock
    std::unique_lock<std::mutex> guard{in_mtx_};
    for (;;) {
      if (closed_)
        return channel_status::closed;
      if (has_room())
        break;
      if (policy_ == overflow::drop_newest) {
        ++dropped_newest_;
        return channel_status::dropped;
      }
      if (policy_ == overflow::drop_oldest) {
        guard.unlock();
        evicted.reset();
        evict_oldest(evicted);
        guard.lock();
        continue;
      }
      if (policy_ == overflow::fail) {
        ++refused_;
        return channel_status::full;
      }
      if (!wait)
        return channel_status::full;
      if (stop != nullptr && stop->stop_possible()) {
        if (stop->stop_requested())
          return channel_status::stopped;
        if (!hook) { // about to wait: arm the stop, without the lock
          guard.unlock();
          arm(hook, *stop, {&in_mtx_, &not_full_, &not_empty_});
          guard.lock();
          continue;
        }
      }
      if (!wait_for_room(guard, until))
        return channel_status::timeout;
    }
    // Either step may throw (out of memory, or building the item): the
    // item is then not accepted, and nothing changed.
    in_.reserve(in_.size() + 1);
    in_.emplace_back(slot_traits::make(std::forward<U>(x)));
    puts_.store(puts_.load(std::memory_order_relaxed) + 1,
                std::memory_order_release);
    note_depth();
    if (waiting_consumers_ > 0)
      not_empty_.notify_one();
    auto feed_subscriber = subscriber_idle_;
    guard.unlock();
    if (feed_subscriber)
      feed_subscribers();
    return channel_status::ok;
  }

  // -- consumers --------------------------------------------------------------

  /// Takes the oldest item. A boxed item leaves its box after the locks are
  /// released; if that throws (the item's move or copy), the item goes back
  /// to the front and the exception propagates.
  /// If `stop` is given and stopped while it waits, returns `stopped` and
  /// takes nothing.
  channel_result<T> get(std::optional<time_point> until, bool wait,
                        const stop_token* stop = nullptr) {
    channel_outbox out; // sent after the locks are released
    typename slot_traits::holder taken; // destroyed after the locks
    stop_notifier hook; // deregistered after them
    channel_result<T> res;
    auto feed = false;
    {
      std::unique_lock<std::mutex> out_guard{out_mtx_};
      for (;;) {
        if (!out_.empty())
          break;
        std::unique_lock<std::mutex> in_guard{in_mtx_};
        if (!in_.empty()) {
          out_.swap(in_); // the whole producer side at once
          break;
        }
        if (closed_ || !wait) {
          res.status = closed_ ? channel_status::closed : channel_status::empty;
          return res;
        }
        if (stop != nullptr && stop->stop_possible()) {
          if (stop->stop_requested()) {
            res.status = channel_status::stopped;
            return res;
          }
          if (!hook) { // about to wait: arm the stop, without the locks
            in_guard.unlock();
            out_guard.unlock();
            arm(hook, *stop, {&in_mtx_, &not_full_, &not_empty_});
            out_guard.lock();
            continue;
          }
        }
        // Wait for any item, wherever it is: another consumer may have
        // moved fresh items to `out_` meanwhile. Others need `out_mtx_`.
        out_guard.unlock();
        ++waiting_consumers_;
        auto ready = [this, stop] {
          return closed_ || depth() > 0
                 || (stop != nullptr && stop->stop_requested());
        };
        auto timed_out = false;
        if (until)
          timed_out = !not_empty_.wait_until(in_guard, *until, ready);
        else
          not_empty_.wait(in_guard, ready);
        --waiting_consumers_;
        if (timed_out) {
          res.status = channel_status::timeout;
          return res;
        }
        in_guard.unlock();
        out_guard.lock();
      }
      if constexpr (slot_traits::inline_items)
        res.value.emplace(std::move(out_.front()));
      else
        taken = std::move(out_.front());
      out_.pop_front();
      res.status = channel_status::ok;
      removed_.fetch_add(1);
      if (wake_wanted_.load())
        feed = wake_producers(out, false);
    }
    deliver(out);
    if (feed)
      feed_subscribers(); // items of parked sends came in
    if constexpr (!slot_traits::inline_items) {
      try {
        res.value.emplace(std::move_if_noexcept(*taken));
      } catch (...) {
        give_back(taken);
        throw;
      }
    }
    return res;
  }

protected:
  /// Hands queued items to idle subscribers (a producer just queued one
  /// while `subscriber_idle_` was set). Call without holding the locks.
  virtual void feed_subscribers() = 0;

  /// Items queued now. Call with `in_mtx_` held (so that `puts_` and
  /// `returned_` stand still and `removed_` cannot pass them).
  size_t depth() const noexcept {
    return puts_.load() + returned_ - removed_.load();
  }

  /// Whether a put fits. Producers look at the consumers' count only when
  /// the last value they saw says "full". Call with `in_mtx_` held.
  bool has_room() noexcept {
    auto added = puts_.load(std::memory_order_relaxed) + returned_;
    if (added - removed_seen_ < capacity_)
      return true;
    removed_seen_ = removed_.load();
    return added - removed_seen_ < capacity_;
  }

  /// Updates the high-water mark. Call with `in_mtx_` held.
  void note_depth() noexcept {
    auto added = puts_.load(std::memory_order_relaxed) + returned_;
    if (added - removed_seen_ > high_water_) {
      removed_seen_ = removed_.load();
      high_water_ = std::max(high_water_, added - removed_seen_);
    }
  }

  /// Waits on a full channel, `in_mtx_` held by `guard`; false if `until`
  /// passed and there is still no room (and it is still open).
  bool wait_for_room(std::unique_lock<std::mutex>& guard,
                     const std::optional<time_point>& until) {
    // Tell consumers someone waits, then look again: either this thread
    // sees their removal or they see `wake_wanted_` (both seq_cst).
    ++waiting_producers_;
    wake_wanted_.store(true);
    auto timed_out = false;
    if (!has_room()) {
      if (until)
        timed_out = not_full_.wait_until(guard, *until)
                    == std::cv_status::timeout;
      else
        not_full_.wait(guard);
    }
    --waiting_producers_;
    return !timed_out || closed_ || has_room();
  }

  /// Drop-oldest: moves the oldest queued item into `evicted`, for the
  /// caller to destroy after the locks are released.
  void evict_oldest(typename slot_traits::holder& evicted) {
    std::unique_lock<std::mutex> out_guard{out_mtx_};
    if (out_.empty()) {
      std::unique_lock<std::mutex> in_guard{in_mtx_};
      out_.swap(in_);
    }
    if (out_.empty())
      return; // consumers made room meanwhile
    slot_traits::hold(evicted, std::move(out_.front()));
    out_.pop_front();
    ++evicted_;
    removed_.fetch_add(1);
  }

  /// Wakes producers after items left the queue: parked sends first (their
  /// items come in, in order, while there is room), then every blocked
  /// thread, and a `channel_writable` for every waiting actor. Call with
  /// `out_mtx_` held, and `in_mtx_` if `in_locked`. True if parked items
  /// came in while a subscriber waits for items (the caller feeds it once
  /// the locks are released). Never throws: if telling the actors fails (out
  /// of memory), they stay listed and the flag set, for the next item that
  /// leaves.
  bool wake_producers(channel_outbox& out, bool in_locked) noexcept {
    std::unique_lock<std::mutex> in_guard{in_mtx_, std::defer_lock};
    if (!in_locked)
      in_guard.lock();
    if (!has_room())
      return false; // still over capacity (returned items): the flag stays
    auto admitted = parked_sends_ > 0 && admit_parked(out) > 0;
    if (admitted && waiting_consumers_ > 0)
      not_empty_.notify_all();
    auto feed = admitted && subscriber_idle_;
    if (parked_sends_ > 0)
      return feed; // they took the room (or are owed it): the flag stays
    if (waiting_producers_ > 0)
      not_full_.notify_all();
    try {
      tell_writers(out);
    } catch (...) {
      return feed;
    }
    wake_wanted_.store(false); // a producer that still finds no room sets it
    return feed;
  }

  /// Moves the items of parked sends in while there is room, answering
  /// each; returns how many came in (see channel_sends.hpp). `in_mtx_` held.
  virtual size_t admit_parked(channel_outbox& out) noexcept = 0;

  /// Queues `channel_writable` for every waiting actor. Both locks held, or
  /// `in_mtx_` alone. If it throws (out of memory), nothing changed.
  void tell_writers(channel_outbox& out) {
    if (writers_.empty())
      return;
    auto msg = caf::make_message(channel_writable{id_});
    out.reserve(out.size() + writers_.size());
    for (auto& w : writers_)
      out.emplace_back(std::move(w), msg);
    writers_.clear();
  }

  /// Takes everything the producers queued to the consumer side. Call with
  /// both locks held. If it throws (out of memory), nothing changed.
  void refill() {
    if (out_.empty()) {
      out_.swap(in_);
      return;
    }
    out_.reserve(out_.size() + in_.size());
    while (!in_.empty()) {
      out_.emplace_back(std::move(in_.front()));
      in_.pop_front();
    }
  }

  /// Puts `items[from..]` back at the front, in order (a dead subscriber's
  /// unread batch, or what a loop consumer did not reach). Both locks held;
  /// the moved-from slots stay with the caller. If it throws (out of
  /// memory), nothing changed.
  void requeue(std::vector<slot>& items, size_t from = 0) {
    if (from >= items.size())
      return;
    out_.reserve(out_.size() + items.size() - from);
    for (auto i = items.size(); i > from; --i)
      out_.push_front(std::move(items[i - 1]));
    returned_ += items.size() - from;
    note_depth();
    if (waiting_consumers_ > 0)
      not_empty_.notify_all();
  }

  /// Moves the `n` oldest items of the consumer side into `into` (a batch),
  /// which must have room for them. Both locks held; never throws.
  void take(size_t n, std::vector<slot>& into) noexcept {
    for (size_t i = 0; i < n; ++i) {
      into.emplace_back(std::move(out_.front()));
      out_.pop_front();
    }
    removed_.fetch_add(n);
  }

  /// A `get` could not move its item out of its box: it goes back to the
  /// front. Call without holding the locks. Never throws: out of memory,
  /// the item is destroyed by the caller, after the locks.
  void give_back(slot& x) noexcept {
    std::unique_lock<std::mutex> out_guard{out_mtx_};
    std::unique_lock<std::mutex> in_guard{in_mtx_};
    try {
      out_.reserve(out_.size() + 1);
    } catch (...) {
      return;
    }
    out_.push_front(std::move(x));
    ++returned_;
    note_depth();
    if (waiting_consumers_ > 0)
      not_empty_.notify_all();
  }

  const uint64_t id_;
  const size_t capacity_;
  const overflow policy_;

  // Producer side, guarded by `in_mtx_`.
  mutable std::mutex in_mtx_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_; // consumers wait with `in_mtx_`
  channel_ring<slot> in_;
  std::atomic<size_t> puts_{0};
  /// Items that went back to the front (written with both locks held).
  size_t returned_ = 0;
  /// The last value of `removed_` this side read (a lower bound).
  size_t removed_seen_ = 0;
  size_t high_water_ = 0;
  size_t dropped_newest_ = 0;
  size_t refused_ = 0;
  size_t waiting_producers_ = 0;
  size_t waiting_consumers_ = 0;
  /// Actors told `full`, owed a `channel_writable`.
  std::vector<caf::strong_actor_ptr> writers_;
  /// Sends waiting for room with their items (see channel_sends.hpp).
  size_t parked_sends_ = 0;
  bool closed_ = false;
  /// Some subscriber has credit and no batch in flight.
  bool subscriber_idle_ = false;

  // Consumer side, guarded by `out_mtx_`.
  alignas(64) mutable std::mutex out_mtx_;
  channel_ring<slot> out_;
  /// Items that left the queue (taken, handed to a subscriber, or evicted).
  std::atomic<size_t> removed_{0};
  /// Producers wait (or actors were told `full`): consumers wake them.
  std::atomic<bool> wake_wanted_{false};
  size_t evicted_ = 0;
};

} // namespace weave::internal
