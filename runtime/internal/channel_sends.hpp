#pragma once

// Internal: `channel::send` from an event-based actor (and, through it, from
// a loop), on top of the queue: a put that answers its actor once the item
// is accepted, instead of failing with `full`.
//
// The answer is a response message to the actor's request id (CAF's own
// response machinery, as for `offload`): `send_accepted`, or an error. A put
// that finds room answers at once (still as a message: the continuation
// never runs inside `send`, so a chain of sends does not grow the stack). A
// put on a full channel whose policy is `block` parks: the item waits in the
// channel, outside its capacity, in `parked_`, and the actor is held like a
// waiting writer. Items that leave the queue make room; `wake_producers`
// then admits parked items first, in the order they were parked (so one
// actor's sends keep their order), and answers each. `close()` refuses every
// parked send with `closed`; its item is destroyed after the locks.
//
// Other policies never wait: `drop_oldest` accepts (evicting), `drop_newest`
// and `fail` answer with `errc::full` (the item was discarded or refused),
// and a closed channel answers `errc::closed`.
//
// Lock: `in_mtx_` guards `parked_`. No user code runs under it: items are
// moved as slots (see channel_slot.hpp), answers go into the outbox, and
// refused items are destroyed by the caller after the locks.

#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "caf/actor_control_block.hpp"
#include "caf/make_message.hpp"
#include "caf/message_id.hpp"

#include "runtime/error.hpp"
#include "runtime/internal/channel_delivery.hpp"
#include "runtime/internal/channel_queue.hpp"
#include "runtime/internal/channel_ring.hpp"
#include "runtime/internal/send_accepted.hpp"

namespace weave::internal {

template <class T>
class channel_sends : public channel_queue<T> {
public:
  using slot = channel_slot_t<T>;

  using channel_queue<T>::channel_queue;

  /// Puts `x` for the actor `dest`, which gets the answer to request `id`
  /// (its response id) as a message: at once, or once a parked item is
  /// admitted or refused. Moves from `x` only if the item is accepted or
  /// parked. Throws only what building the item throws (then nothing was
  /// sent and `x` is untouched).
  template <class U>
  void send(caf::strong_actor_ptr dest, caf::message_id id, U&& x) {
    channel_outbox out;
    out.reserve(1); // the answer always fits
    auto accepted = caf::make_message(send_accepted{});
    for (;;) {
      {
        std::unique_lock<std::mutex> guard{this->in_mtx_};
        if (this->policy_ == overflow::block && !this->closed_
            && (this->parked_sends_ > 0 || !this->has_room())) {
          auto feed = park(std::move(dest), id, std::forward<U>(x), out);
          guard.unlock();
          deliver(out);
          if (feed)
            this->feed_subscribers();
          return;
        }
      }
      auto st = this->put(std::forward<U>(x), std::nullopt, false);
      if (st == channel_status::full && this->policy_ == overflow::block)
        continue; // the room went meanwhile: park (`x` is untouched)
      out.emplace_back(std::move(dest),
                       st == channel_status::ok ? std::move(accepted)
                                                : refusal(st),
                       id);
      break;
    }
    deliver(out);
  }

protected:
  /// Refuses every parked send with `closed` (the channel closes): the
  /// answers go to `out`, the items to `dead` (destroyed by the caller after
  /// the locks). `in_mtx_` held. If it throws (out of memory), nothing
  /// changed; a later `close()` tries again.
  void refuse_parked(channel_outbox& out, std::vector<slot>& dead) {
    if (parked_.empty())
      return;
    auto msg = caf::make_message(
      make_error(errc::closed, "channel::send: the channel closed before "
                               "there was room for the item"));
    out.reserve(out.size() + parked_.size());
    dead.reserve(dead.size() + parked_.size());
    while (!parked_.empty()) {
      auto& p = parked_.front();
      dead.emplace_back(std::move(p.item));
      out.emplace_back(std::move(p.dest), msg, p.id);
      parked_.pop_front();
    }
    this->parked_sends_ = 0;
  }

  /// The channel is being destroyed (its last handle went): every parked
  /// send hears `closed` and every actor told `full` by `offer` gets its
  /// `channel_writable`, so no actor waits for a message that never comes.
  /// Call from the most derived destructor.
  void answer_waiters_at_end() noexcept {
    try {
      std::vector<slot> dead; // destroyed after the lock
      channel_outbox out;
      {
        std::unique_lock<std::mutex> guard{this->in_mtx_};
        this->tell_writers(out);
        refuse_parked(out, dead);
      }
      deliver(out);
    } catch (...) {
      // Out of memory: the senders are let go of unanswered (their actors'
      // other messages still arrive).
    }
  }

  size_t admit_parked(channel_outbox& out) noexcept override {
    size_t n = 0;
    try {
      auto msg = caf::make_message(send_accepted{});
      while (!parked_.empty() && this->has_room()) {
        this->in_.reserve(this->in_.size() + 1);
        out.reserve(out.size() + 1);
        // Nothing below throws.
        auto& p = parked_.front();
        this->in_.emplace_back(std::move(p.item));
        this->puts_.store(this->puts_.load(std::memory_order_relaxed) + 1,
                          std::memory_order_release);
        out.emplace_back(std::move(p.dest), msg, p.id);
        parked_.pop_front();
        --this->parked_sends_;
        ++n;
      }
    } catch (...) {
      // Out of memory: the rest stay parked, and the flag set, for the
      // next item that leaves.
    }
    if (n > 0)
      this->note_depth();
    return n;
  }

private:
  struct parked_send {
    parked_send(slot item, caf::strong_actor_ptr dest,
                caf::message_id id) noexcept
      : item(std::move(item)), dest(std::move(dest)), id(id) {
    }

    slot item;
    caf::strong_actor_ptr dest;
    caf::message_id id;
  };

  /// Parks a send on a full channel, `in_mtx_` held; admits it at once if
  /// room appeared meanwhile (see `wait_for_room`). True if its item came
  /// in while a subscriber waits (the caller feeds it after the lock). If
  /// it throws (out of memory, building the item), nothing changed.
  template <class U>
  bool park(caf::strong_actor_ptr dest, caf::message_id id, U&& x,
            channel_outbox& out) {
    parked_.reserve(parked_.size() + 1);
    parked_.emplace_back(slot_traits::make(std::forward<U>(x)),
                         std::move(dest), id);
    ++this->parked_sends_;
    // Announce, then look again: a consumer either sees the flag or this
    // thread sees its removal (both seq_cst).
    this->wake_wanted_.store(true);
    if (!this->has_room() || admit_parked(out) == 0)
      return false;
    if (this->waiting_consumers_ > 0)
      this->not_empty_.notify_all();
    return this->subscriber_idle_;
  }

  using slot_traits = channel_slot<T>;

  /// The answer for a put that did not take its item.
  static caf::message refusal(channel_status st) {
    switch (st) {
      case channel_status::closed:
        return caf::make_message(
          make_error(errc::closed, "channel::send: the channel is closed"));
      case channel_status::dropped:
        return caf::make_message(
          make_error(errc::full, "channel::send: the channel is full; its "
                                 "drop_newest policy discarded the item"));
      default:
        return caf::make_message(
          make_error(errc::full, "channel::send: the channel is full and its "
                                 "policy is fail"));
    }
  }

  /// Parked sends, oldest first. Guarded by `in_mtx_`.
  channel_ring<parked_send> parked_;
};

} // namespace weave::internal
