#pragma once

// Internal: the shared body of a `channel_batch<T>` message.
//
// It holds the items and returns their credit to the channel when the last
// copy of the batch is destroyed — normally right after the subscriber's
// handler returned. If no handler looked at the items (`opened` is false)
// and the subscriber is dying (the batch is being dropped with its mailbox),
// the channel puts the items back at the front of its queue. The destructor
// runs wherever the last copy dies (often inside CAF, on the dying actor's
// thread); it only calls `channel_core::batch_done`, which takes the locks
// itself and sends through `deliver` (no recursion).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "caf/ref_counted.hpp"

namespace weave::internal {

template <class T>
class channel_core;

/// The items of one batch; returns their credit when destroyed.
template <class T>
class batch_data : public caf::ref_counted {
public:
  batch_data(std::weak_ptr<channel_core<T>> core, uint64_t subscriber,
             std::vector<T> xs)
    : items(std::move(xs)), core_(std::move(core)), subscriber_(subscriber),
      credit_(items.size()) {
  }

  ~batch_data() override {
    if (auto core = core_.lock())
      core->batch_done(subscriber_, credit_, opened ? nullptr : &items);
    // Whatever is left in `items` (read items, or unread ones the channel
    // did not take back) is destroyed here, outside the channel's locks.
  }

  std::vector<T> items;

  /// Set once a handler asked for the items; a batch destroyed unopened was
  /// never read.
  bool opened = false;

private:
  std::weak_ptr<channel_core<T>> core_;
  uint64_t subscriber_;
  size_t credit_;
};

} // namespace weave::internal
