#pragma once

// Internal: the shared body of a `channel_batch<T>` message.
//
// It holds the items (as slots, see channel_slot.hpp) and returns their
// credit to the channel when the last copy of the batch is destroyed —
// normally right after the subscriber's handler returned. If no handler
// looked at the items (`opened` is false) and the subscriber is dying (the
// batch is being dropped with its mailbox), or the message could not even
// be built for sending, the channel puts the items back at the front of its
// queue. The destructor runs wherever the last copy dies (often inside CAF,
// on the dying actor's thread); it only calls `channel_core::batch_done`,
// which takes the locks itself and sends through `deliver` (no recursion).
//
// The channel builds a batch in two steps: it creates it empty and
// unarmed (so that a failure to create the message destroys nothing and
// returns nothing), then moves the items in and arms it, without an
// exception possible in between.
//
// Boxed items (see channel_slot.hpp) are moved out of their boxes the first
// time a handler asks for `items()`, on the consumer's thread.
//
// A batch keeps its channel alive (a strong reference) until it has returned
// its credit: the subscriber is owed the rest of the stream and its
// `channel_closed`, which the channel sends when the batch comes back. A
// producer may close the channel and drop the last handle to it while a
// batch is in flight; without that reference the channel would die with the
// batch on its way, and the subscriber would never get its end. The cycle
// this makes (channel, subscribed actor, its mailbox, the batch) ends when
// the batch is handled or dropped with the mailbox, and at the runtime's
// shutdown, when the channel lets go of every actor. The batch lets go of
// the channel last, after `batch_done` returned and outside its locks, so
// the channel may be destroyed there.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "caf/ref_counted.hpp"

#include "runtime/internal/channel_delivery.hpp"
#include "runtime/internal/channel_slot.hpp"

namespace weave::internal {

template <class T>
class channel_core;

/// The items of one batch; returns their credit when destroyed.
template <class T>
class batch_data : public caf::ref_counted {
public:
  using slot_traits = channel_slot<T>;
  using slot = channel_slot_t<T>;

  batch_data(std::shared_ptr<channel_core<T>> core, uint64_t subscriber)
    : core_(std::move(core)), subscriber_(subscriber) {
  }

  ~batch_data() override {
    if (armed_ && core_)
      core_->batch_done(subscriber_, credit_, opened ? nullptr : &slots,
                        first_unread, delivery_failed());
    // Whatever is left (read items, or unread ones the channel did not take
    // back) is destroyed here, outside the channel's locks; the channel is
    // let go of after that (`core_`, last).
    slots.clear();
    core_.reset();
  }

  /// Marks the batch complete: its `slots` are the items it carries. The
  /// channel calls it under its locks, after the last step that may fail.
  void arm() noexcept {
    credit_ = slots.size();
    armed_ = true;
  }

  size_t size() const noexcept {
    if constexpr (slot_traits::inline_items)
      return slots.size();
    else
      return moved_out_ ? items_.size() : slots.size();
  }

  /// The items, moved out of their boxes on the first call (which marks the
  /// batch as read). If moving an item throws, so does this call: when the
  /// items are copied out (their move may throw, a copy leaves the original
  /// intact), the batch stays unread; when they are moved, it counts as read.
  std::vector<T>& items() {
    if constexpr (slot_traits::inline_items) {
      opened = true;
      return slots;
    } else {
      if (!moved_out_) {
        constexpr bool copies = !std::is_nothrow_move_constructible<T>::value
                                && std::is_copy_constructible<T>::value;
        try {
          items_.reserve(slots.size());
          for (auto& x : slots)
            items_.emplace_back(std::move_if_noexcept(*x));
        } catch (...) {
          items_.clear();
          if (!copies)
            opened = true;
          throw;
        }
        moved_out_ = true;
        opened = true;
        slots.clear(); // the boxes, and what is left in them, go now
      }
      return items_;
    }
  }

  /// The channel that sent the batch.
  std::weak_ptr<channel_core<T>> core() const noexcept {
    return core_;
  }

  uint64_t subscriber() const noexcept {
    return subscriber_;
  }

  /// The items as the channel handed them over.
  std::vector<slot> slots;

  /// Set once a consumer looked at the items; a batch destroyed unopened
  /// was never read.
  bool opened = false;

  /// A consumer that takes the items one at a time (a paced loop consumer)
  /// leaves the batch unopened and counts here the items it took: only the
  /// ones after them are unread.
  size_t first_unread = 0;

private:
  /// Keeps the channel alive while the batch is out (see above).
  std::shared_ptr<channel_core<T>> core_;
  uint64_t subscriber_;
  size_t credit_ = 0;
  bool armed_ = false;
  /// Boxed items only: the items moved out of `slots` by `items()`.
  std::vector<T> items_;
  bool moved_out_ = false;
};

} // namespace weave::internal
