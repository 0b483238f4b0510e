#pragma once

// Internal: the shared state behind `channel<T>` (see runtime/channel.hpp
// for the contract): the bounded queue of `channel_queue`, plus subscribed
// actors, closing, statistics, and the runtime's shutdown.
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
// No user code runs under the locks: messages are sent by `deliver` after
// the locks are released, and a subscriber that leaves is moved out of the
// list under the locks, but its hooks (a loop's handler, a promise and its
// continuations) run and are destroyed after them.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "caf/actor_cast.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/make_counted.hpp"
#include "caf/make_message.hpp"

#include "runtime/channel.hpp"
#include "runtime/error.hpp"
#include "runtime/internal/channel_batch_data.hpp"
#include "runtime/internal/channel_consume.hpp"
#include "runtime/internal/channel_delivery.hpp"
#include "runtime/internal/channel_queue.hpp"
#include "runtime/internal/channel_subscriber.hpp"
#include "runtime/internal/component.hpp"

namespace weave::internal {

template <class T>
class channel_core final
  : public channel_queue<T>,
    public component,
    public std::enable_shared_from_this<channel_core<T>> {
public:
  using channel_queue<T>::channel_queue;

  // -- component --------------------------------------------------------------

  shutdown_phase phase() const noexcept override {
    return shutdown_phase::channels;
  }

  void begin_shutdown(shutdown_report& report) override {
    if (close(caf::error{}))
      ++report.channels_closed;
  }

  void finish_shutdown(steady_clock::time_point, shutdown_report&) override {
    // nop: closing releases everyone at once
  }

  // -- subscribers ------------------------------------------------------------

  /// Subscribes an event-based actor: it receives `channel_batch<T>` and
  /// `channel_closed` messages.
  void subscribe_actor(caf::event_based_actor* self, size_t credit) {
    subscriber_hooks<T> hooks;
    hooks.wrap_batch = [](channel_batch<T>&& b) {
      return caf::make_message(std::move(b));
    };
    hooks.wrap_end = [id = this->id_] {
      return caf::make_message(channel_closed{id});
    };
    subscribe(self, credit, std::move(hooks));
  }

  void subscribe(caf::event_based_actor* self, size_t credit,
                 subscriber_hooks<T> hooks) {
    std::weak_ptr<channel_core> weak = this->shared_from_this();
    channel_outbox out;
    uint64_t sid;
    {
      std::unique_lock<std::mutex> out_guard{this->out_mtx_};
      std::unique_lock<std::mutex> in_guard{this->in_mtx_};
      sid = ++next_subscriber_;
      subscriber s;
      s.id = sid;
      s.actor = caf::actor_cast<caf::strong_actor_ptr>(self);
      s.self = self;
      s.credit = credit;
      s.hooks = std::move(hooks);
      subs_.push_back(std::move(s));
      dispatch(out);
    }
    self->attach_functor([weak, sid](const caf::error& reason) {
      if (auto core = weak.lock())
        core->subscriber_down(sid, reason);
    });
    deliver(out);
  }

  /// A batch is gone: returns its credit and sends the next one. `unread`
  /// holds its items if no handler looked at them: they go back to the
  /// front of the queue if the subscriber is dying or gone, else they count
  /// as lost (a live actor let them go).
  void batch_done(uint64_t sid, size_t credit, std::vector<T>* unread) {
    channel_outbox out;
    {
      std::unique_lock<std::mutex> out_guard{this->out_mtx_};
      std::unique_lock<std::mutex> in_guard{this->in_mtx_};
      auto i = find_subscriber(sid);
      auto gone = i == subs_.end() || i->dying();
      if (i != subs_.end()) {
        i->dead = gone;
        i->credit += credit;
        i->in_flight = false;
      }
      if (unread != nullptr && !unread->empty()) {
        if (gone)
          this->requeue(*unread);
        else
          lost_ += unread->size();
      }
      dispatch(out);
    }
    deliver(out);
  }

  // -- closing and monitoring -------------------------------------------------

  /// Closes the channel, recording `reason`; false if it was closed
  /// already.
  bool close(caf::error reason) {
    channel_outbox out;
    {
      std::unique_lock<std::mutex> out_guard{this->out_mtx_};
      std::unique_lock<std::mutex> in_guard{this->in_mtx_};
      if (this->closed_)
        return false;
      this->closed_ = true;
      close_reason_ = std::move(reason);
      this->wake_wanted_.store(false);
      this->not_full_.notify_all();
      this->not_empty_.notify_all();
      this->tell_writers(out);
      dispatch(out);
    }
    deliver(out);
    return true;
  }

  bool closed() const {
    std::unique_lock<std::mutex> guard{this->in_mtx_};
    return this->closed_;
  }

  caf::error close_reason() const {
    std::unique_lock<std::mutex> guard{this->out_mtx_};
    return close_reason_;
  }

  channel_stats stats() const {
    std::unique_lock<std::mutex> out_guard{this->out_mtx_};
    std::unique_lock<std::mutex> in_guard{this->in_mtx_};
    channel_stats s;
    s.capacity = this->capacity_;
    s.depth = this->in_.size() + this->out_.size();
    s.high_water = this->high_water_;
    s.puts = this->puts_.load();
    s.gets = this->removed_.load() - this->evicted_ - this->returned_;
    s.drops = this->dropped_newest_ + this->evicted_;
    s.refused = this->refused_;
    s.requeued = this->returned_;
    s.lost = lost_;
    s.batches = batches_;
    s.blocked_producers = this->waiting_producers_;
    s.blocked_consumers = this->waiting_consumers_;
    s.waiting_writers = this->writers_.size();
    s.subscribers = subs_.size();
    return s;
  }

protected:
  void feed_subscribers() override {
    channel_outbox out;
    {
      std::unique_lock<std::mutex> out_guard{this->out_mtx_};
      std::unique_lock<std::mutex> in_guard{this->in_mtx_};
      dispatch(out);
    }
    deliver(out);
  }

private:
  using subscriber = channel_subscriber<T>;

  typename std::vector<subscriber>::iterator find_subscriber(uint64_t sid) {
    return std::find_if(subs_.begin(), subs_.end(),
                        [sid](const subscriber& s) { return s.id == sid; });
  }

  /// Hands queued items to idle subscribers with credit, and end-of-stream
  /// to idle subscribers of a closed, drained channel. Call with both locks
  /// held.
  void dispatch(channel_outbox& out) {
    auto took = false;
    auto idle = false;
    for (auto& s : subs_) {
      if (s.in_flight || s.end_sent || s.dead)
        continue;
      if (s.dying()) {
        s.dead = true;
        continue;
      }
      if (this->out_.size() < s.credit)
        this->refill();
      if (!this->out_.empty()) {
        auto n = std::min(s.credit, this->out_.size());
        auto data = caf::make_counted<batch_data<T>>(this->weak_from_this(),
                                                     s.id, this->take(n));
        ++batches_;
        s.credit -= n;
        s.in_flight = true;
        took = true;
        out.emplace_back(s.actor,
                         s.hooks.wrap_batch(channel_batch<T>{std::move(data)}));
      } else if (this->closed_) {
        s.end_sent = true;
        out.emplace_back(s.actor, s.hooks.wrap_end());
      } else {
        idle = true;
      }
    }
    // Producers that queue an item while a subscriber waits for one hand it
    // over themselves (read under `in_mtx_`, so no item is stranded).
    this->subscriber_idle_ = idle && !this->closed_;
    if (took && this->wake_wanted_.load())
      this->wake_producers(out, true);
  }

  /// CAF reports that subscriber `sid` died (its mailbox is already gone).
  void subscriber_down(uint64_t sid, const caf::error& reason) {
    std::optional<subscriber> gone; // its hooks die after the locks
    auto last = false;
    {
      std::unique_lock<std::mutex> out_guard{this->out_mtx_};
      std::unique_lock<std::mutex> in_guard{this->in_mtx_};
      auto i = find_subscriber(sid);
      if (i == subs_.end())
        return;
      gone.emplace(std::move(*i));
      subs_.erase(i);
      last = subs_.empty() && !this->closed_;
      if (subs_.empty())
        this->subscriber_idle_ = false;
    }
    if (last)
      close(reason ? reason
                   : make_error(errc::closed, "the consumer actor ended"));
    if (gone->hooks.on_down)
      gone->hooks.on_down(reason);
  }

  // Guarded by both locks.
  size_t lost_ = 0;
  size_t batches_ = 0;
  caf::error close_reason_;
  std::vector<subscriber> subs_;
  uint64_t next_subscriber_ = 0;
};

} // namespace weave::internal
