#pragma once

// Internal: the state behind `when_any`.
//
// One continuation per input; the first to run wins the decision (an
// atomic flag that `cancel()` on the result competes for too), takes
// its input's outcome, moves the input futures into the result and
// completes the output. The others find the flag taken and do nothing: they
// never touch their input's value, so the caller can still `get`, `then` or
// pass on every other input. The winner then drops the output, so the
// continuations left on the other inputs hold only this small state, not the
// result (which holds the inputs: that would be a cycle).
//
// A cancelled result takes no input's value: the losers never read theirs.
//
// No lock: the flag decides. So no user code runs under one of weave's
// locks.

#include <atomic>
#include <cstddef>
#include <utility>
#include <vector>

#include "caf/expected.hpp"
#include "caf/intrusive_ptr.hpp"
#include "caf/make_counted.hpp"
#include "caf/ref_counted.hpp"

#include "runtime/future.hpp"
#include "runtime/internal/callback.hpp"
#include "runtime/internal/compose.hpp"
#include "runtime/internal/future_state.hpp"

namespace weave {

template <class T>
struct when_any_result;

namespace internal {

/// Decides who completes a `when_any` result: the first input, or a
/// `cancel()` of the result. Shared by the result's state and the inputs'
/// continuations.
struct any_decision : caf::ref_counted {
  std::atomic<bool> decided{false};
};

/// The result's state: `cancel()` competes with the inputs for the decision,
/// so a cancelled `when_any` takes no input's value.
template <class T>
class any_output final : public future_state<when_any_result<T>> {
public:
  explicit any_output(caf::intrusive_ptr<any_decision> d)
    : decision_(std::move(d)) {
    // nop
  }

  bool cancel(caf::error reason) noexcept override {
    if (decision_->decided.exchange(true, std::memory_order_acq_rel))
      return false;
    return this->set_error(std::move(reason));
  }

private:
  caf::intrusive_ptr<any_decision> decision_;
};

template <class T>
class any_state final : public caf::ref_counted {
public:
  using output_type = when_any_result<T>;

  explicit any_state(std::vector<future<T>> inputs)
    : decision_(caf::make_counted<any_decision>()),
      inputs_(std::move(inputs)),
      out_(caf::make_counted<any_output<T>>(decision_)) {
    // nop
  }

  future<output_type> output() const {
    return make_future(future_state_ptr<output_type>{out_});
  }

  /// Attaches a continuation to every input. `states` are the inputs'
  /// states: the winner may move the inputs away while this still runs.
  void start(const std::vector<future_state_ptr<T>>& states) {
    for (size_t i = 0; i < states.size(); ++i) {
      if (decision_->decided.load(std::memory_order_acquire))
        return; // decided already: spare the others a dead continuation
      states[i]->on_complete(
        callback{[self = caf::intrusive_ptr<any_state>{this}, i] {
          self->deliver(i);
        }});
    }
  }

private:
  /// Input `i` completed: the first one (unless the result was cancelled)
  /// owns `out_` and `inputs_` from here on.
  void deliver(size_t i) noexcept {
    if (decision_->decided.exchange(true, std::memory_order_acq_rel))
      return;
    auto out = std::move(out_);
    auto futures = std::move(inputs_);
    auto outcome = take_outcome(*state_of(futures[i]));
    futures[i] = future<T>{};
    try {
      out->set_value(output_type{i, std::move(outcome), std::move(futures)});
    } catch (...) { // moving the outcome threw; set_value stored the error
      if (!out->ready())
        out->set_error(current_exception_error());
    }
  }

  caf::intrusive_ptr<any_decision> decision_;
  std::vector<future<T>> inputs_;
  caf::intrusive_ptr<any_output<T>> out_;
};

} // namespace internal
} // namespace weave
