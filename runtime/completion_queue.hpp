#pragma once

/// `as_completed` and `completion_queue<T>`: the outcomes of many futures in
/// the order they complete, the C++ answer to `asyncio.as_completed`.
///
///     auto q = weave::as_completed(std::move(downloads));
///     for (auto& c : q)                     // a plain thread, blocking
///       report(c.index, c.outcome);         // first finished, first out
///
///     weave::as_completed(std::move(jobs))  // an actor or a loop
///       .for_each([=](weave::completion<int> c) { self->send(self, ...); })
///       .then([=](weave::result<void>) { /* every one was handled */ });
///
/// `as_completed(std::vector<future<T>>)` (or `(first, last)`) returns a
/// `completion_queue<T>`; each outcome it hands out is a `completion<T>`:
/// `index`, the input's position (counting from 0), and `outcome`, its
/// `result<T>`. Every input's outcome is handed out exactly once, in the
/// order in which weave saw the inputs complete: one thread's completions
/// keep their order, and inputs already complete at the call are seen in
/// input order.
///
/// Plain threads (blocking)
/// - `next()` waits for the next outcome; `std::nullopt` once every outcome
///   was handed out. `next_for(timeout)` waits at most `timeout` (saturating:
///   `hours::max()` has no limit; negative or NaN: `invalid_argument`);
///   `std::nullopt` when it ran out, or when none is left — `remaining()`
///   tells which. Like `future::get`, both refuse to run on a thread that
///   must never block (a scheduler thread, a loop's own thread) and throw
///   `would_deadlock`. Several threads may call `next` at once; each outcome
///   goes to one of them.
/// - `begin()` / `end()`: a range-for over `next()`.
/// - `size()`: the number of inputs; `remaining()`: outcomes not yet handed
///   out.
///
/// Actors and loops (never blocking)
/// - `for_each(cb)`: `cb` takes a `completion<T>` (by value, `&`, `const&`
///   or `&&`) and runs once per outcome not yet handed out, in completion
///   order and never on two threads at once: for outcomes already there, at
///   once on the calling thread; later ones on the thread that completes the
///   input (a pool worker, a loop's thread), as `then` callbacks do. An
///   actor sends itself a message from `cb` to get back onto its own thread.
///   Returns a `future<void>` that completes after `cb` returned for the last
///   outcome (then `cb` is destroyed) — or fails with the error of the first
///   exception `cb` threw (the later outcomes still reach `cb`). Cancelling
///   that future completes only it: `cb` still sees every outcome. Once
///   `for_each` was called, `next` throws `invalid_argument` (also in a
///   thread that was waiting in it), and so does a second `for_each`.
///
/// Bad input is refused at the call, before anything is consumed: an invalid
/// future throws `invalid_argument`, one whose value `get()` or `then()`
/// already took throws `already_retrieved`, both naming the input's
/// position. No inputs: a queue that is empty at once (`next()` returns
/// `std::nullopt`, `for_each`'s future completes at once). The inputs are
/// consumed, like `then` consumes its future.
///
/// Thread-safety: `as_completed` and every member may be called from any
/// thread (the blocking ones where blocking is allowed). An input's
/// completion happens-before its outcome is handed out. The queue's lock
/// guards positions only: no user code (values' moves and destructors,
/// `cb`, continuations) runs under it or any other weave lock.
///
/// Lifetime and shutdown: the `completion_queue` is a move-only handle; the
/// state lives on until every input has completed, so dropping the handle
/// early is safe (outcomes not handed out are destroyed with the state, and
/// a `for_each` handler keeps receiving). It owns no thread and is not
/// registered with the runtime: at shutdown, pool and loop futures complete
/// with `shut_down`, and those outcomes are handed out like any other.

#include <chrono>
#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "caf/make_counted.hpp"

#include "runtime/error.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/compose.hpp"
#include "runtime/internal/completion_queue_state.hpp"
#include "runtime/internal/deadline.hpp"

namespace weave {

/// One input's outcome, handed out by a `completion_queue`.
template <class T>
struct completion {
  /// The input's position (counting from 0).
  size_t index;

  /// The input's outcome.
  result<T> outcome;
};

template <class T>
class completion_queue;

template <class T>
completion_queue<T> as_completed(std::vector<future<T>> fs);

/// The outcomes of a set of futures in completion order; see the header
/// comment.
template <class T>
class completion_queue {
public:
  class iterator;

  completion_queue(completion_queue&&) noexcept = default;
  completion_queue& operator=(completion_queue&&) noexcept = default;
  completion_queue(const completion_queue&) = delete;
  completion_queue& operator=(const completion_queue&) = delete;

  /// False after a move from this handle.
  bool valid() const noexcept {
    return state_ != nullptr;
  }

  /// The number of inputs.
  size_t size() const {
    return checked_state().size();
  }

  /// The outcomes not yet handed out.
  size_t remaining() const {
    return checked_state().remaining();
  }

  /// Waits for the next outcome; `std::nullopt` once none is left.
  std::optional<completion<T>> next() {
    internal::check_may_block("completion_queue::next");
    return checked_state().next(internal::steady_clock::time_point::max());
  }

  /// Waits at most `timeout`; `std::nullopt` when it ran out or none is
  /// left. Throws `invalid_argument` for a negative or NaN timeout.
  template <class Rep, class Period>
  std::optional<completion<T>>
  next_for(std::chrono::duration<Rep, Period> timeout) {
    internal::check_may_block("completion_queue::next_for");
    if (internal::negative_or_nan(timeout))
      raise(make_error(errc::invalid_argument,
                       "completion_queue::next_for: negative or NaN "
                       "timeout"));
    return checked_state().next(internal::deadline_after(timeout));
  }

  /// Hands every outcome not yet handed out to `cb`; see the header comment.
  template <class F>
  future<void> for_each(F cb) {
    using impl = internal::completion_handler_impl<T, F>;
    return checked_state().for_each(std::make_unique<impl>(std::move(cb)));
  }

  /// Takes the first outcome (waits like `next()`).
  iterator begin() {
    return iterator{this};
  }

  iterator end() noexcept {
    return iterator{};
  }

  /// An input iterator over `next()`.
  class iterator {
  public:
    using iterator_category = std::input_iterator_tag;
    using value_type = completion<T>;
    using difference_type = std::ptrdiff_t;
    using pointer = completion<T>*;
    using reference = completion<T>&;

    /// The end.
    iterator() = default;

    explicit iterator(completion_queue* q) : queue_(q) {
      advance();
    }

    reference operator*() {
      return *current_;
    }

    pointer operator->() {
      return &*current_;
    }

    iterator& operator++() {
      advance();
      return *this;
    }

    bool operator==(const iterator& other) const noexcept {
      return queue_ == other.queue_;
    }

    bool operator!=(const iterator& other) const noexcept {
      return queue_ != other.queue_;
    }

  private:
    void advance() {
      current_ = queue_->next();
      if (!current_)
        queue_ = nullptr;
    }

    completion_queue* queue_ = nullptr;
    std::optional<completion<T>> current_;
  };

private:
  friend completion_queue<T> as_completed<T>(std::vector<future<T>> fs);

  explicit completion_queue(internal::completion_queue_state_ptr<T> st)
    : state_(std::move(st)) {
    // nop
  }

  internal::completion_queue_state<T>& checked_state() const {
    if (!state_)
      raise(make_error(errc::invalid_argument,
                       "completion_queue: the handle was moved from"));
    return *state_;
  }

  internal::completion_queue_state_ptr<T> state_;
};

/// The outcomes of `fs` in completion order; see the header comment.
template <class T>
completion_queue<T> as_completed(std::vector<future<T>> fs) {
  auto states = internal::checked_states("as_completed", fs);
  auto st = caf::make_counted<internal::completion_queue_state<T>>(
    states.size());
  st->start(states);
  return completion_queue<T>{std::move(st)};
}

/// The outcomes of the futures in [`first`, `last`) in completion order.
template <class It, class = std::enable_if_t<internal::is_future<
                      typename std::iterator_traits<It>::value_type>::value>>
completion_queue<typename std::iterator_traits<It>::value_type::value_type>
as_completed(It first, It last) {
  using value_type = typename std::iterator_traits<It>::value_type::value_type;
  return as_completed(std::vector<future<value_type>>(first, last));
}

} // namespace weave
