#pragma once

// Internal: `channel<T>::consume` in a loop whose `on_item` returns a
// future (a paced consumer): the loop takes the next item only while fewer
// than `limit` of those futures are pending, so it bounds its own work in
// flight (a loop fetching URLs from a channel keeps at most `limit`
// fetches going, instead of one per queued item).
//
// Everything runs on the loop's thread, in `paced_consumer`'s members: a
// batch arrives as a loop job and is held while its items are started one
// at a time (each one counted in the batch's `first_unread` before it is
// handed over, so a batch dropped with the loop puts the rest back in the
// channel); the batch is released, returning its credit, once every item
// started, so the channel's next batch follows. The subscription's credit is
// `limit`: the loop holds at most `limit` unstarted items besides its
// `limit` pending futures.
//
// A future that completes on another thread (a pool's `submit`) posts its
// completion into the loop; one that completes in the loop (made by the
// loop's context, or already complete) is settled at once, without
// recursion (`pumping_`).
//
// The first failure (`on_item` throws or returns an invalid future, or one
// of the futures fails) stops taking items: the consumer leaves the channel,
// the items it did not start go back to the front in order, and the result
// fails with that error once the futures already pending completed (and a
// batch that was on its way arrived and went back too). The end
// of the stream completes the result with the number of items started, once
// every future completed. If the loop ends first, the result fails with
// `shut_down` (the subscription's `on_down`).

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "caf/actor_cast.hpp"
#include "caf/actor_control_block.hpp"
#include "caf/intrusive_ptr.hpp"
#include "caf/mailbox_element.hpp"
#include "caf/make_counted.hpp"
#include "caf/make_message.hpp"

#include "runtime/error.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/channel_batch_data.hpp"
#include "runtime/internal/channel_slot.hpp"
#include "runtime/internal/loop_jobs.hpp"
#include "runtime/loop_context.hpp"

namespace weave::internal {

template <class T, class F>
class paced_consumer
  : public std::enable_shared_from_this<paced_consumer<T, F>> {
public:
  using batch_ptr = caf::intrusive_ptr<batch_data<T>>;

  paced_consumer(F fn, size_t limit, promise<size_t> done, loop_context& cx)
    : fn_(std::move(fn)),
      limit_(limit),
      done_(std::move(done)),
      cx_(&cx),
      loop_(caf::actor_cast<caf::weak_actor_ptr>(cx.self())) {
    // nop
  }

  /// A batch arrived (in the loop).
  void take(batch_ptr b) {
    if (core_.expired()) {
      core_ = b->core();
      sid_ = b->subscriber();
    }
    batch_ = std::move(b);
    if (failure_) {
      give_back(); // it was on its way when the consumer failed
      finish_if_done();
    } else {
      pump();
    }
  }

  /// The stream ended (in the loop): every batch came and went.
  void end() {
    ended_ = true;
    finish_if_done();
  }

  /// The loop's actor ended (from its cleanup: no loop job runs any more).
  /// The result fails now (with the consumer's first failure, else
  /// `shut_down`) instead of waiting for the futures still pending, and the
  /// unstarted items of the batch held go back to the channel now, in order,
  /// not when the last of those futures lets go of this consumer.
  void loop_ended() noexcept {
    try {
      if (failure_)
        done_.set_error(failure_);
      else
        done_.set_error(make_error(errc::shut_down,
                                   "the loop stopped before the channel "
                                   "ended"));
    } catch (...) {
      // Out of memory: the result ends with `broken_promise` once the
      // consumer is gone.
    }
    batch_.reset(); // the channel takes back the items after `first_unread`
    batch_owed_ = false;
  }

private:
  /// Starts items while fewer than `limit_` futures are pending.
  void pump() {
    if (pumping_)
      return; // a settle inside `fn_`: the loop below goes on
    pumping_ = true;
    while (!failure_ && batch_ != nullptr && in_flight_ < limit_) {
      auto& xs = batch_->slots;
      auto i = batch_->first_unread;
      if (i == xs.size()) {
        batch_.reset(); // returns its credit: the next batch follows
        break;
      }
      batch_->first_unread = i + 1; // counts as consumed from here on
      ++started_;
      ++in_flight_;
      start(channel_slot<T>::get(xs[i]));
    }
    pumping_ = false;
    finish_if_done();
  }

  /// Calls `fn_` on `x`; its future settles later (or now).
  void start(T& x) {
    try {
      auto fut = fn_(x);
      if (!fut.valid())
        raise(make_error(errc::invalid_argument,
                         "channel::consume: on_item returned an invalid "
                         "future"));
      auto self = this->shared_from_this();
      fut.then([self](auto& res) { self->completed(res ? caf::error{}
                                                       : res.error()); });
    } catch (...) {
      settle(current_exception_error());
    }
  }

  /// A future completed, on whatever thread completed it.
  void completed(caf::error err) noexcept {
    if (current_loop_context() == cx_) {
      settle(std::move(err));
      return;
    }
    try {
      auto self = this->shared_from_this();
      auto job = [self, err{std::move(err)}]() mutable {
        self->settle(std::move(err));
      };
      if (auto dest = loop_.lock())
        dest->enqueue(caf::make_mailbox_element(
                        nullptr, caf::make_message_id(), {},
                        loop_message{caf::make_counted<post_job<decltype(
                          job)>>(std::move(job))}),
                      nullptr);
      // Else the loop is gone: its end failed the result already.
    } catch (...) {
      // Out of memory: the loop never hears of it; the result fails with
      // `shut_down` when the loop ends.
    }
  }

  /// One future completed (in the loop).
  void settle(caf::error err) {
    --in_flight_;
    if (err && !failure_)
      fail(std::move(err));
    pump();
  }

  /// Stops taking items: the consumer leaves, the unstarted items go back.
  void fail(caf::error err) {
    failure_ = std::move(err);
    give_back();
  }

  /// Leaves the channel, giving back the unstarted items of the batch held.
  void give_back() {
    auto owner = core_.lock();
    if (owner == nullptr)
      return;
    std::vector<channel_slot_t<T>> none;
    auto& xs = batch_ != nullptr ? batch_->slots : none;
    auto from = batch_ != nullptr ? batch_->first_unread : 0;
    auto on_its_way = owner->consumer_failed(sid_, xs, from);
    if (batch_ != nullptr) {
      batch_->first_unread = xs.size(); // given back: nothing left to return
      batch_.reset();
      batch_owed_ = false;
    } else {
      // A batch sent before the consumer left: the result waits until it
      // arrived and went back too.
      batch_owed_ = on_its_way;
    }
  }

  void finish_if_done() {
    if (in_flight_ > 0 || pumping_ || batch_owed_)
      return;
    if (failure_)
      done_.set_error(failure_);
    else if (ended_)
      done_.set_value(started_);
  }

  F fn_;
  const size_t limit_;
  promise<size_t> done_;
  loop_context* cx_;
  caf::weak_actor_ptr loop_;
  /// The channel and this consumer's id in it (from the first batch).
  std::weak_ptr<channel_core<T>> core_;
  uint64_t sid_ = 0;
  batch_ptr batch_;
  size_t in_flight_ = 0;
  size_t started_ = 0;
  bool pumping_ = false;
  /// The consumer failed while a batch was on its way to it.
  bool batch_owed_ = false;
  bool ended_ = false;
  caf::error failure_;
};

} // namespace weave::internal
