#pragma once

// Internal: the state behind `as_completed` and `completion_queue<T>`.
//
// One slot per input and an order list of input positions, in the order the
// inputs completed. An input's continuation moves its outcome into its own
// slot (no lock: no other thread writes that slot), then appends its
// position to the order list under `mtx_`. Readers pop a position under
// `mtx_` and move the outcome out of the slot after unlocking. The order
// list's capacity is reserved up front, so an append never allocates or
// throws. So `mtx_` guards positions and counters only: no user code (a
// value's moves or destructor, a handler, a continuation) ever runs while it
// is held.
//
// Handler mode (`for_each`): one thread at a time drains the order list
// into the handler — the one that finds nobody draining when it appends (or
// attaches the handler). The drainer pops under `mtx_`, calls the handler
// without it, and gives up the role only when it finds the list empty under
// `mtx_`; an appender that sees `draining_` leaves its position to the
// drainer. So the handler never runs on two threads at once, runs in
// completion order, and every position reaches it exactly once. After the
// last one the drainer destroys the handler (outside the lock) and completes
// the `for_each` future.
//
// Thread-safety: every member may be called from any thread; `next` blocks.

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"
#include "caf/intrusive_ptr.hpp"
#include "caf/make_counted.hpp"
#include "caf/ref_counted.hpp"

#include "runtime/error.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/callback.hpp"
#include "runtime/internal/compose.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/future_state.hpp"

namespace weave {

template <class T>
struct completion;

namespace internal {

/// A `for_each` handler, type-erased (move-only targets allowed).
template <class T>
class completion_handler {
public:
  virtual ~completion_handler() = default;
  virtual void call(completion<T>&& c) = 0;
};

template <class T, class F>
class completion_handler_impl final : public completion_handler<T> {
public:
  explicit completion_handler_impl(F f) : f_(std::move(f)) {
    // nop
  }

  void call(completion<T>&& c) override {
    call_with_value(f_, c);
  }

private:
  F f_;
};

template <class T>
class completion_queue_state final : public caf::ref_counted {
public:
  using handler_ptr = std::unique_ptr<completion_handler<T>>;

  explicit completion_queue_state(size_t inputs) : slots_(inputs) {
    order_.reserve(inputs);
  }

  /// Attaches a continuation to every input.
  void start(const std::vector<future_state_ptr<T>>& states) {
    for (size_t i = 0; i < states.size(); ++i) {
      auto& st = states[i];
      st->on_complete(callback{
        [self = caf::intrusive_ptr<completion_queue_state>{this}, st, i] {
          self->deliver(i, take_outcome(*st));
        }});
    }
  }

  size_t size() const noexcept {
    return slots_.size();
  }

  /// How many outcomes were not yet handed out.
  size_t remaining() {
    std::unique_lock<std::mutex> guard{mtx_};
    return slots_.size() - head_;
  }

  /// The next outcome in completion order, waiting until `deadline`
  /// (`time_point::max()`: without a limit); nullopt at the deadline or
  /// once every outcome was handed out.
  std::optional<completion<T>> next(steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock{mtx_};
    auto can_go = [this] {
      return head_ < order_.size() || head_ == slots_.size()
             || handler_attached_;
    };
    if (!can_go()) {
      ++waiters_;
      if (deadline == steady_clock::time_point::max())
        cv_.wait(lock, can_go);
      else
        cv_.wait_until(lock, deadline, can_go);
      --waiters_;
    }
    if (handler_attached_) {
      lock.unlock();
      raise(make_error(errc::invalid_argument,
                       "as_completed: next() after for_each(): the "
                       "completions go to the for_each handler"));
    }
    if (head_ == order_.size())
      return std::nullopt; // timed out, or every outcome was handed out
    auto pos = order_[head_++];
    lock.unlock();
    return std::optional<completion<T>>{take_slot(pos)};
  }

  /// Hands every outcome not yet handed out to `h`, in completion order;
  /// see the header comment.
  future<void> for_each(handler_ptr h) {
    auto done = caf::make_counted<future_state<void>>();
    {
      std::unique_lock<std::mutex> lock{mtx_};
      if (handler_attached_) {
        lock.unlock();
        raise(make_error(errc::invalid_argument,
                         "as_completed: for_each() was already called"));
      }
      handler_attached_ = true;
      handler_ = std::move(h);
      done_ = done;
      draining_ = true; // nobody drains before a handler is attached
      if (waiters_ > 0)
        cv_.notify_all(); // a blocked next() is refused now
    }
    drain();
    return make_future(std::move(done));
  }

private:
  void deliver(size_t pos, caf::expected<T>&& res) noexcept {
    try {
      slots_[pos].emplace(std::move(res));
    } catch (...) { // the value's move threw: that is this input's outcome
      slots_[pos].emplace(caf::expected<T>{current_exception_error()});
    }
    bool drain_now = false;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      order_.push_back(pos); // reserved: never allocates
      if (waiters_ > 0)
        cv_.notify_all();
      if (handler_attached_ && !draining_) {
        draining_ = true;
        drain_now = true;
      }
    }
    if (drain_now)
      drain();
  }

  /// Moves outcome `pos` out of its slot (the slot is then empty).
  completion<T> take_slot(size_t pos) noexcept {
    auto& slot = slots_[pos];
    try {
      completion<T> c{pos, std::move(*slot)};
      slot.reset();
      return c;
    } catch (...) { // the value's move threw: that is the outcome
      slot.reset();
      return completion<T>{pos, caf::expected<T>{current_exception_error()}};
    }
  }

  /// Runs the handler for every position appended, until none is left;
  /// called by the one thread that set `draining_`.
  void drain() noexcept {
    for (;;) {
      size_t pos = 0;
      handler_ptr finished;
      future_state_ptr<void> done;
      {
        std::unique_lock<std::mutex> guard{mtx_};
        if (head_ < order_.size()) {
          pos = order_[head_++];
        } else if (head_ < slots_.size()) {
          draining_ = false; // the next append drains
          return;
        } else { // all handed out; stays `draining_` for good
          finished = std::move(handler_);
          done = std::move(done_);
        }
      }
      if (done) {
        finished.reset(); // the handler's captures go, outside the lock
        if (first_error_)
          done->set_error(std::move(first_error_));
        else
          done->set_value();
        return;
      }
      try {
        handler_->call(take_slot(pos));
      } catch (...) {
        if (!first_error_)
          first_error_ = current_exception_error();
      }
    }
  }

  std::vector<std::optional<caf::expected<T>>> slots_;
  std::mutex mtx_;
  std::condition_variable cv_;
  /// Positions of completed inputs, in completion order (guarded).
  std::vector<size_t> order_;
  /// How many of `order_` were handed out (guarded).
  size_t head_ = 0;
  size_t waiters_ = 0;
  bool handler_attached_ = false;
  bool draining_ = false;
  /// Read and reset only by the drainer.
  handler_ptr handler_;
  future_state_ptr<void> done_;
  caf::error first_error_;
};

template <class T>
using completion_queue_state_ptr = caf::intrusive_ptr<completion_queue_state<T>>;

} // namespace internal
} // namespace weave
