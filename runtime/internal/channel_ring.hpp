#pragma once

// Internal: the growable ring buffer that holds a channel's queued items
// (as slots, see channel_slot.hpp).
//
// Unlike `std::deque`, it separates the one step that may fail from the
// steps that change the queue: `reserve` allocates (and may throw
// `bad_alloc`, leaving the ring as it was); `emplace_back` with room,
// `push_front` with room, `pop_front` and `swap` never throw. So the
// channel reserves first and then commits a whole operation without an
// exception halfway through — no item is ever half moved or lost.
//
// Slots must be nothrow move constructible and nothrow destructible; a
// moved-from slot is destroyed without running user code (a null pointer,
// or an item whose destructor is trivial). The capacity only grows (by
// doubling), up to the most items the ring held at once.
//
// Not thread-safe: the channel guards each ring with one of its locks.

#include <algorithm>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace weave::internal {

template <class S>
class channel_ring {
public:
  static_assert(std::is_nothrow_move_constructible<S>::value,
                "channel slots must move without throwing");
  static_assert(std::is_nothrow_destructible<S>::value,
                "channel slots must be destroyed without throwing");

  /// The first allocation holds at least this many slots.
  static constexpr size_t min_capacity = 16;

  channel_ring() noexcept = default;

  channel_ring(const channel_ring&) = delete;
  channel_ring& operator=(const channel_ring&) = delete;

  ~channel_ring() {
    clear();
    if (buf_ != nullptr)
      std::allocator<S>{}.deallocate(buf_, cap_);
  }

  size_t size() const noexcept {
    return size_;
  }

  bool empty() const noexcept {
    return size_ == 0;
  }

  /// Makes room for `n` slots in all. Throws `bad_alloc` (the ring
  /// unchanged) if it cannot.
  void reserve(size_t n) {
    if (n <= cap_)
      return;
    auto cap = std::max({n, cap_ * 2, min_capacity});
    auto* buf = std::allocator<S>{}.allocate(cap);
    for (size_t i = 0; i < size_; ++i) {
      auto& x = at(i);
      new (buf + i) S(std::move(x));
      x.~S();
    }
    if (buf_ != nullptr)
      std::allocator<S>{}.deallocate(buf_, cap_);
    buf_ = buf;
    cap_ = cap;
    head_ = 0;
  }

  /// Whether `n` more slots fit without allocating.
  bool has_room_for(size_t n) const noexcept {
    return cap_ - size_ >= n;
  }

  S& front() noexcept {
    return at(0);
  }

  S& operator[](size_t i) noexcept {
    return at(i);
  }

  /// Appends a slot built from `xs`; needs room (`reserve`). If building
  /// it throws, the ring is unchanged.
  template <class... Ts>
  void emplace_back(Ts&&... xs) {
    new (&at(size_)) S(std::forward<Ts>(xs)...);
    ++size_;
  }

  /// Prepends `x`; needs room (`reserve`).
  void push_front(S&& x) noexcept {
    head_ = head_ == 0 ? cap_ - 1 : head_ - 1;
    new (buf_ + head_) S(std::move(x));
    ++size_;
  }

  void pop_front() noexcept {
    buf_[head_].~S();
    head_ = head_ + 1 == cap_ ? 0 : head_ + 1;
    --size_;
  }

  /// Destroys every slot (the capacity stays).
  void clear() noexcept {
    while (size_ > 0)
      pop_front();
    head_ = 0;
  }

  void swap(channel_ring& other) noexcept {
    std::swap(buf_, other.buf_);
    std::swap(cap_, other.cap_);
    std::swap(head_, other.head_);
    std::swap(size_, other.size_);
  }

private:
  /// The slot `i` places after the head (`i` may equal `size_`, the first
  /// free place, when there is room).
  S& at(size_t i) const noexcept {
    auto j = head_ + i;
    return buf_[j < cap_ ? j : j - cap_];
  }

  S* buf_ = nullptr;
  size_t cap_ = 0;
  size_t head_ = 0;
  size_t size_ = 0;
};

} // namespace weave::internal
