#pragma once

/// What a channel sends to actors: `channel_batch<T>` (items, to a
/// subscriber), `channel_closed` (the end, to a subscriber) and
/// `channel_writable` (room again, to an actor told `full` by `offer`). See
/// runtime/channel.hpp for when each is sent.
///
/// Thread-safety: a batch belongs to the actor that received it; copies of
/// it share its items. Its credit goes back to the channel when the last
/// copy is destroyed.

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "caf/allowed_unsafe_message_type.hpp"
#include "caf/intrusive_ptr.hpp"
#include "caf/meta/type_name.hpp"

#include "runtime/error.hpp"

namespace weave {

namespace internal {

template <class T>
class batch_data;

} // namespace internal

/// Sent to a subscriber after the last item of a closed channel.
struct channel_closed {
  uint64_t channel_id = 0;
};

/// Sent to an `offer`ing actor once a full channel has room (or closed).
struct channel_writable {
  uint64_t channel_id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, channel_closed& x) {
  return f(caf::meta::type_name("channel_closed"), x.channel_id);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, channel_writable& x) {
  return f(caf::meta::type_name("channel_writable"), x.channel_id);
}

/// A batch of items delivered to a subscribed actor; see channel.hpp.
template <class T>
class channel_batch {
public:
  channel_batch() = default;

  explicit channel_batch(caf::intrusive_ptr<internal::batch_data<T>> data)
    : data_(std::move(data)) {
  }

  // No begin()/end() on purpose: CAF would take the batch for a container
  // to serialize. Iterate `items()`.

  /// How many items it holds (does not count as reading them); 0 for a
  /// default-constructed batch.
  size_t size() const noexcept {
    return data_ ? data_->size() : 0;
  }

  T& operator[](size_t i) {
    return items()[i];
  }

  /// The items, to iterate or move from. Calling it marks the batch as read:
  /// should the subscriber die now, its items count as consumed. Items that
  /// the channel keeps boxed (see channel.hpp) are moved out on the
  /// first call; if that throws, so does this call (a batch whose items
  /// are copied out stays unread). A default-constructed batch throws
  /// `invalid_argument`.
  std::vector<T>& items() const {
    if (!data_)
      raise(make_error(errc::invalid_argument,
                       "channel_batch::items: an empty batch (default-"
                       "constructed, or moved from)"));
    return data_->items();
  }

private:
  caf::intrusive_ptr<internal::batch_data<T>> data_;
};

} // namespace weave

namespace caf {

template <class T>
struct allowed_unsafe_message_type<weave::channel_batch<T>> : std::true_type {};

} // namespace caf

// The batch's shared body; not part of the API.
#include "runtime/internal/channel_batch_data.hpp"
