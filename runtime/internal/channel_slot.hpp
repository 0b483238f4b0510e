#pragma once

// Internal: how a channel stores one item while it holds it.
//
// No item destructor may run while the channel holds its locks (it is user
// code), and moving items around under the locks must not throw (an
// exception halfway through a batch would lose items). So:
// - an item whose destructor is trivial and whose move cannot throw (`int`,
//   `double`, a plain struct) is stored inline: moving and destroying it
//   runs no user code;
// - any other item (`std::string`, `std::unique_ptr`, a copy-only type, a
//   type whose move may throw) lives in a box of its own, and the channel
//   moves only the pointer under its locks. The item is built under the lock
//   (a put moves from its argument only once it is accepted), but is moved
//   out of its box and destroyed after the locks are released, by whoever
//   takes it (a `get`, a batch's `items()`, a dropped batch).

#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace weave::internal {

template <class T>
struct channel_slot {
  /// Whether items are stored inline (see the header comment).
  static constexpr bool inline_items = std::is_trivially_destructible<T>::value
                                       && std::is_nothrow_move_constructible<
                                         T>::value;

  using type = std::conditional_t<inline_items, T, std::unique_ptr<T>>;

  /// Room for one slot taken out of the queue, to be destroyed after the
  /// locks (empty by default).
  using holder
    = std::conditional_t<inline_items, std::optional<T>, std::unique_ptr<T>>;

  static void hold(holder& h, type&& x) noexcept {
    if constexpr (inline_items)
      h.emplace(std::move(x));
    else
      h = std::move(x);
  }

  /// A slot holding an item built from `x`. May throw what building the
  /// item (or its box) throws.
  template <class U>
  static type make(U&& x) {
    if constexpr (inline_items)
      return type(std::forward<U>(x));
    else
      return std::make_unique<T>(std::forward<U>(x));
  }

  static T& get(type& x) noexcept {
    if constexpr (inline_items)
      return x;
    else
      return *x;
  }
};

template <class T>
using channel_slot_t = typename channel_slot<T>::type;

} // namespace weave::internal
