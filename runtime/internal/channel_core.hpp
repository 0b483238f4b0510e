#pragma once

// Internal: the shared state behind `channel<T>` (see runtime/channel.hpp
// for the contract): the queue and subscribers of `channel_fanout`, plus
// producing actors (`offer`), statistics, and the runtime's shutdown.
//
// References into the actor system: closing at shutdown tells every waiting
// writer and lets go of every subscriber that got its end; the subscribers
// still held when the runtime is about to destroy the actor system are let
// go of then (`release_actors`). A closed channel lists no writer. So a
// channel may outlive its runtime in any state. A channel made without a
// runtime has no such steps, and refuses actors altogether.
//
// Locking: the two locks of `channel_queue`; no user code runs under them
// (see channel_fanout.hpp and channel_queue.hpp).

#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "caf/actor_cast.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/intrusive_ptr.hpp"
#include "caf/make_message.hpp"
#include "caf/message_priority.hpp"

#include "runtime/channel.hpp"
#include "runtime/channel_send.hpp"
#include "runtime/error.hpp"
#include "runtime/internal/channel_batch_data.hpp"
#include "runtime/internal/channel_consume.hpp"
#include "runtime/internal/channel_delivery.hpp"
#include "runtime/internal/channel_fanout.hpp"
#include "runtime/internal/channel_subscriber.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/metrics.hpp"

namespace weave::internal {

template <class T>
class channel_core final
  : public channel_fanout<T>,
    public component,
    public std::enable_shared_from_this<channel_core<T>> {
public:
  using channel_fanout<T>::channel_fanout;

  ~channel_core() override {
    this->answer_waiters_at_end();
  }

  /// Marks the channel as one the runtime shuts down (before it is shared).
  void bind_to_runtime() noexcept {
    runtime_bound_ = true;
  }

  /// Names the channel (before it is shared).
  void set_name(std::string name) noexcept {
    name_ = std::move(name);
  }

  const std::string& name() const noexcept {
    return name_;
  }

  void collect_metrics(metrics_snapshot& out) const override {
    auto s = stats();
    channel_metrics m;
    m.name = name_.empty() ? "channel-" + std::to_string(this->id_) : name_;
    m.id = this->id_;
    m.capacity = s.capacity;
    m.depth = s.depth;
    m.high_water = s.high_water;
    m.blocked_producers = s.blocked_producers;
    m.blocked_consumers = s.blocked_consumers;
    m.subscribers = s.subscribers;
    m.puts = s.puts;
    m.gets = s.gets;
    m.drops = s.drops;
    m.refused = s.refused;
    m.closed = closed();
    out.channels.push_back(std::move(m));
  }

  // -- component --------------------------------------------------------------

  shutdown_phase phase() const noexcept override {
    return shutdown_phase::channels;
  }

  void begin_shutdown(shutdown_report& report) override {
    if (this->close(caf::error{}))
      ++report.channels_closed;
  }

  void finish_shutdown(steady_clock::time_point, shutdown_report&) override {
    // nop: closing releases everyone at once
  }

  void release_actors() noexcept override {
    this->release_subscribers();
  }

  // -- actors -----------------------------------------------------------------

  /// Subscribes an event-based actor: it receives `channel_batch<T>` and
  /// `channel_closed` messages.
  void subscribe_actor(caf::event_based_actor* self, size_t credit) {
    check_actors_allowed("subscribe");
    subscriber_hooks<T> hooks;
    hooks.wrap_batch = [](caf::intrusive_ptr<batch_data<T>> b) {
      return caf::make_message(channel_batch<T>{std::move(b)});
    };
    hooks.wrap_end = [id = this->id_] {
      return caf::make_message(channel_closed{id});
    };
    this->subscribe(self, credit, std::move(hooks));
  }

  /// Subscribes the loop of `cx` (see channel_consume.hpp).
  template <class F>
  future<size_t> consume(loop_context& cx, F on_item, size_t credit) {
    check_actors_allowed("consume");
    return consume_in_loop(*this, cx, std::move(on_item), credit);
  }

  /// Puts `x` for `self`, answering when it is accepted (see
  /// channel_sends.hpp).
  template <class U>
  send_handle send(caf::event_based_actor* self, U&& x) {
    check_actors_allowed("send");
    auto rid = self->new_request_id(caf::message_priority::normal);
    channel_sends<T>::send(caf::actor_cast<caf::strong_actor_ptr>(self),
                           rid.response_id(), std::forward<U>(x));
    return send_handle{self, rid};
  }

  /// Puts `x` for the loop of `cx`; the future completes in the loop.
  template <class U>
  future<void> send(loop_context& cx, U&& x) {
    check_actors_allowed("send");
    auto b = context_access::bind<void>(cx);
    if (b.state) // else the loop ended: the future failed with `shut_down`
      send(context_access::self(cx), std::forward<U>(x))
        .then(value_setter<void>(b.state), error_setter<void>(b.state));
    return std::move(b.fut);
  }

  /// Puts without waiting; on `full`, `self` gets `channel_writable` once a
  /// slot frees (or the channel closes).
  template <class U>
  channel_status offer(caf::event_based_actor* self, U&& x) {
    check_actors_allowed("offer");
    auto st = this->put(std::forward<U>(x), std::nullopt, false);
    if (st != channel_status::full)
      return st;
    auto me = caf::actor_cast<caf::strong_actor_ptr>(self);
    {
      std::unique_lock<std::mutex> guard{this->in_mtx_};
      if (!this->closed_) {
        this->writers_.push_back(me);
        this->wake_wanted_.store(true); // then look again, as in put
        if (!this->has_room())
          return channel_status::full;
        this->writers_.pop_back();
      }
    }
    // Room appeared (or it closed) meanwhile: tell the actor right away.
    channel_outbox out;
    out.emplace_back(std::move(me),
                     caf::make_message(channel_writable{this->id_}));
    deliver(out);
    return channel_status::full;
  }

  // -- monitoring -------------------------------------------------------------

  bool closed() const {
    std::unique_lock<std::mutex> guard{this->in_mtx_};
    return this->closed_;
  }

  caf::error close_reason() const {
    std::unique_lock<std::mutex> guard{this->out_mtx_};
    return this->close_reason_;
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
    s.lost = this->lost_;
    s.batches = this->batches_;
    s.blocked_producers = this->waiting_producers_;
    s.blocked_consumers = this->waiting_consumers_;
    s.waiting_writers = this->writers_.size();
    s.parked_sends = this->parked_sends_;
    s.subscribers = this->subs_.size();
    return s;
  }

protected:
  std::weak_ptr<channel_core<T>> weak_core() noexcept override {
    return this->weak_from_this();
  }

private:
  void check_actors_allowed(const char* what) const {
    if (!runtime_bound_)
      raise(make_error(errc::invalid_argument,
                       std::string{"channel::"} + what
                         + ": actors need a channel created with a runtime"));
  }

  /// Set once, before the channel is shared.
  bool runtime_bound_ = false;
  /// Set once, before the channel is shared (empty: unnamed).
  std::string name_;
};

} // namespace weave::internal
