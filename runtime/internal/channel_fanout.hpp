#pragma once

// Internal: the subscribers of a channel (actors and loops), on top of its
// queue: batches, their credit, end-of-stream, closing, and subscribers that
// die or fail. `channel_core` completes it (see runtime/channel.hpp for the
// contract).
//
// Subscribers get one batch at a time (that keeps the order); a batch's
// credit comes back through `batch_done` when its message dies. An actor
// that dies empties its mailbox before CAF runs its cleanup callbacks, so
// its unread batch reaches `batch_done` while it is still subscribed: the
// channel sees the closed mailbox, marks it dead (nothing more is sent to
// it) and puts the items back at the front. `subscriber_down`, from the
// cleanup callback, then removes it and closes the channel if it was the
// last subscriber.
//
// References into the actor system: the channel lets go of a subscriber
// once it sent it the end, and of every actor it still holds when the
// runtime is about to destroy its actor system (`release_subscribers`);
// after that, subscribing is refused with `shut_down`.
//
// A batch in flight holds the channel itself (see channel_batch_data.hpp),
// so the channel outlives its last handle until the batch came back and the
// subscriber was sent what it is owed (the rest, then the end).
//
// No user code runs under the locks: messages are sent by `deliver` after
// the locks are released; a subscriber that leaves is moved out of the list
// under the locks, but its hooks (a loop's handler, a promise and its
// continuations) run and are destroyed after them, and so is the last
// reference to an actor the channel lets go of (destroying an actor runs its
// behaviour's destructors).
//
// Exceptions: a batch is built (message, room for its items, room in the
// outbox) before its items leave the queue; if that fails for want of
// memory, the items stay at the front and the subscriber stays idle, and
// the channel tries again on its next put, batch return, subscribe or
// `close()` (a repeated `close()` retries too).

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "caf/actor_cast.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/make_counted.hpp"

#include "runtime/channel.hpp"
#include "runtime/error.hpp"
#include "runtime/internal/channel_batch_data.hpp"
#include "runtime/internal/channel_delivery.hpp"
#include "runtime/internal/channel_queue.hpp"
#include "runtime/internal/channel_sends.hpp"
#include "runtime/internal/channel_subscriber.hpp"

namespace weave::internal {

template <class T>
class channel_core;

template <class T>
class channel_fanout : public channel_sends<T> {
public:
  using slot = channel_slot_t<T>;

  using channel_sends<T>::channel_sends;

  // -- subscribers ------------------------------------------------------------

  void subscribe(caf::event_based_actor* self, size_t credit,
                 subscriber_hooks<T> hooks) {
    auto weak = weak_core();
    channel_outbox out;
    subscriber s; // if it is not taken, its hooks die after the locks
    s.actor = caf::actor_cast<caf::strong_actor_ptr>(self);
    s.self = self;
    s.credit = credit;
    s.hooks = std::move(hooks);
    uint64_t sid;
    {
      std::unique_lock<std::mutex> out_guard{this->out_mtx_};
      std::unique_lock<std::mutex> in_guard{this->in_mtx_};
      if (released_)
        raise(make_error(errc::shut_down,
                         "channel::subscribe: the runtime is shut down"));
      s.id = next_subscriber_ + 1;
      subs_.push_back(std::move(s)); // may throw: nothing changed
      sid = ++next_subscriber_;
      dispatch(out);
    }
    try {
      self->attach_functor([weak, sid](const caf::error& reason) {
        if (auto core = weak.lock())
          core->subscriber_down(sid, reason);
      });
    } catch (...) {
      // Without the hook its death would go unseen: it leaves at once.
      deliver(out);
      remove_subscriber(sid);
      throw;
    }
    deliver(out);
  }

  /// A batch is gone: returns its credit and sends the next one. `unread`
  /// holds its items if no handler looked at them (from `from` on): they go
  /// back to the front of the queue if the subscriber is dying or gone, or
  /// if the batch never reached it (`undelivered`), else they count as lost
  /// (a live actor let them go). Called from the batch's destructor: never
  /// throws.
  void batch_done(uint64_t sid, size_t credit, std::vector<slot>* unread,
                  size_t from, bool undelivered) noexcept {
    channel_outbox out;
    {
      std::unique_lock<std::mutex> out_guard{this->out_mtx_};
      std::unique_lock<std::mutex> in_guard{this->in_mtx_};
      auto i = find_subscriber(sid);
      auto gone = i == subs_.end() || i->dying();
      if (i != subs_.end()) {
        i->dead = i->actor != nullptr && gone;
        i->credit += credit;
        i->in_flight = false;
      }
      if (unread != nullptr && unread->size() > from) {
        if (gone || undelivered)
          requeue_or_lose(*unread, from);
        else
          lost_ += unread->size() - from;
      }
      if (undelivered) {
        // Out of memory: retrying at once could go on for ever. The next
        // put (or close) tries again.
        this->subscriber_idle_ = true;
      } else {
        dispatch(out);
      }
    }
    deliver(out);
  }

  /// A loop consumer failed (its `on_item` threw, or an item's future
  /// failed): the consumer leaves, and `items[from..]`, which it did not
  /// reach, go back to the front, in order. True if a batch was on its way
  /// to it (it comes back when the consumer receives or drops it). Call
  /// without holding the locks; never throws.
  bool consumer_failed(uint64_t sid, std::vector<slot>& items,
                       size_t from) noexcept {
    std::optional<subscriber> gone; // its hooks die after the locks
    channel_outbox out;
    auto batch_on_its_way = false;
    {
      std::unique_lock<std::mutex> out_guard{this->out_mtx_};
      std::unique_lock<std::mutex> in_guard{this->in_mtx_};
      auto i = find_subscriber(sid);
      if (i != subs_.end()) {
        batch_on_its_way = i->in_flight;
        gone.emplace(std::move(*i));
        subs_.erase(i);
      }
      requeue_or_lose(items, from);
      dispatch(out);
    }
    deliver(out);
    return batch_on_its_way;
  }

  /// Lets go of every subscriber: the actor system is about to go. A loop
  /// consumer that did not get its end fails with `shut_down`.
  void release_subscribers() noexcept {
    std::vector<subscriber> gone; // destroyed after the locks
    {
      std::unique_lock<std::mutex> out_guard{this->out_mtx_};
      std::unique_lock<std::mutex> in_guard{this->in_mtx_};
      released_ = true;
      gone.swap(subs_);
      this->subscriber_idle_ = false;
    }
    for (auto& s : gone) {
      if (s.end_sent || !s.hooks.on_down)
        continue;
      try {
        s.hooks.on_down(make_error(errc::shut_down, "the runtime shut down "
                                                    "before the channel "
                                                    "ended"));
      } catch (...) {
        // Out of memory: see notify_down.
      }
    }
    // Dropping the last references may destroy actors now, which runs their
    // cleanup (and `subscriber_down`, which finds nothing) on this thread.
  }

  // -- closing ----------------------------------------------------------------

  /// Closes the channel, recording `reason`; false if it was closed
  /// already. Either way, it then sends what is still owed (ends,
  /// `channel_writable`, refusals of parked sends) if sending failed before
  /// for want of memory.
  bool close(caf::error reason) {
    std::vector<slot> refused; // parked sends' items, destroyed last
    channel_outbox out;
    auto closed_now = false;
    {
      std::unique_lock<std::mutex> out_guard{this->out_mtx_};
      std::unique_lock<std::mutex> in_guard{this->in_mtx_};
      if (!this->closed_) {
        closed_now = true;
        this->closed_ = true;
        close_reason_ = std::move(reason);
        this->wake_wanted_.store(false);
        this->not_full_.notify_all();
        this->not_empty_.notify_all();
      }
      try {
        this->tell_writers(out);
        this->refuse_parked(out, refused);
      } catch (...) {
        // Out of memory: they stay listed for a later close().
      }
      dispatch(out);
    }
    deliver(out);
    return closed_now;
  }

protected:
  using subscriber = channel_subscriber<T>;

  /// The channel, for batches and CAF's cleanup callbacks to find it.
  virtual std::weak_ptr<channel_core<T>> weak_core() noexcept = 0;

  void feed_subscribers() noexcept override {
    channel_outbox out;
    {
      std::unique_lock<std::mutex> out_guard{this->out_mtx_};
      std::unique_lock<std::mutex> in_guard{this->in_mtx_};
      dispatch(out);
    }
    deliver(out);
  }

  // Guarded by both locks.
  size_t lost_ = 0;
  size_t batches_ = 0;
  caf::error close_reason_;
  std::vector<subscriber> subs_;

private:
  template <class>
  friend class channel_core;

  /// What `feed` did for one subscriber.
  enum class fed { nothing, batch, waits };

  typename std::vector<subscriber>::iterator find_subscriber(uint64_t sid) {
    return std::find_if(subs_.begin(), subs_.end(),
                        [sid](const subscriber& s) { return s.id == sid; });
  }

  /// Moves subscriber `sid` out of the list (empty if it is not there), for
  /// the caller to destroy after unlocking. Call with both locks held.
  std::optional<subscriber> take_subscriber_locked(uint64_t sid) {
    std::optional<subscriber> gone;
    auto i = find_subscriber(sid);
    if (i != subs_.end()) {
      gone.emplace(std::move(*i));
      subs_.erase(i);
    }
    return gone;
  }

  /// Removes subscriber `sid` (its hooks die after the locks).
  void remove_subscriber(uint64_t sid) noexcept {
    std::optional<subscriber> gone;
    std::unique_lock<std::mutex> out_guard{this->out_mtx_};
    std::unique_lock<std::mutex> in_guard{this->in_mtx_};
    gone = take_subscriber_locked(sid);
  }

  /// `requeue`, or, out of memory, counts the items as lost (they die with
  /// their holder, after the locks). Both locks held.
  void requeue_or_lose(std::vector<slot>& items, size_t from) noexcept {
    try {
      this->requeue(items, from);
    } catch (...) {
      if (from < items.size())
        lost_ += items.size() - from;
    }
  }

  /// Hands queued items to idle subscribers with credit, and end-of-stream
  /// to idle subscribers of a closed, drained channel. Call with both locks
  /// held. Never throws: a subscriber that could not be fed stays idle.
  void dispatch(channel_outbox& out) noexcept {
    auto took = false;
    auto idle = false;
    auto failed = false;
    for (auto& s : subs_) {
      if (s.in_flight || s.end_sent || s.dead)
        continue;
      if (s.dying()) {
        s.dead = true;
        continue;
      }
      try {
        switch (feed(s, out)) {
          case fed::batch:
            took = true;
            break;
          case fed::waits:
            idle = true;
            break;
          case fed::nothing:
            break;
        }
      } catch (...) {
        idle = true;
        failed = true;
      }
    }
    // Producers that queue an item while a subscriber waits for one hand it
    // over themselves (read under `in_mtx_`, so no item is stranded). After
    // a failure, the next put tries again even on a closed channel.
    this->subscriber_idle_ = idle && (failed || !this->closed_);
    if (took && this->wake_wanted_.load() && this->wake_producers(out, true)) {
      // Parked sends' items came in while some subscriber waits: feed it.
      // Each round fills idle subscribers, so this ends.
      dispatch(out);
    }
  }

  /// Sends `s` (idle, alive) its next batch, or its end. Both locks held.
  /// Everything that may throw comes before the items leave the queue.
  fed feed(subscriber& s, channel_outbox& out) {
    if (this->out_.size() < s.credit)
      this->refill();
    if (!this->out_.empty()) {
      auto n = std::min(s.credit, this->out_.size());
      // The batch keeps the channel alive until it comes back: the
      // subscriber is owed its end even if every handle is dropped meanwhile.
      auto data = caf::make_counted<batch_data<T>>(weak_core().lock(), s.id);
      data->slots.reserve(n);
      auto msg = s.hooks.wrap_batch(data);
      out.reserve(out.size() + 1);
      // Nothing below throws.
      this->take(n, data->slots);
      data->arm();
      ++batches_;
      s.credit -= n;
      s.in_flight = true;
      out.emplace_back(s.actor, std::move(msg));
      return fed::batch;
    }
    if (!this->closed_)
      return fed::waits;
    auto msg = s.hooks.wrap_end();
    out.reserve(out.size() + 1);
    s.end_sent = true;
    // It gets nothing more: the channel lets go of it (the outbox's
    // reference dies once the message is sent, after the locks).
    out.emplace_back(std::move(s.actor), std::move(msg));
    s.self = nullptr;
    return fed::nothing;
  }

  /// CAF reports that subscriber `sid` died (its mailbox is already gone).
  void subscriber_down(uint64_t sid, const caf::error& reason) noexcept {
    std::optional<subscriber> gone; // its hooks die after the locks
    auto last = false;
    {
      std::unique_lock<std::mutex> out_guard{this->out_mtx_};
      std::unique_lock<std::mutex> in_guard{this->in_mtx_};
      gone = take_subscriber_locked(sid);
      if (!gone)
        return;
      last = subs_.empty() && !this->closed_;
      if (subs_.empty())
        this->subscriber_idle_ = false;
    }
    if (last) {
      try {
        close(reason ? reason
                     : make_error(errc::closed, "the consumer actor ended"));
      } catch (...) {
        // Out of memory making the reason: close without one.
        close(caf::error{});
      }
    }
    if (gone->hooks.on_down)
      notify_down(*gone, reason);
  }

  /// Runs `s`'s `on_down` hook (weave's own code: it fails a future, whose
  /// continuations catch what they throw). Called from CAF's cleanup and
  /// from shutdown, where nothing may escape: out of memory, the future
  /// ends with `broken_promise` once its promises are gone.
  static void notify_down(subscriber& s, const caf::error& reason) noexcept {
    try {
      s.hooks.on_down(reason);
    } catch (...) {
      // nop
    }
  }

  uint64_t next_subscriber_ = 0;
  /// The runtime is about to destroy the actor system: no more actors.
  bool released_ = false;
};

} // namespace weave::internal
