#pragma once

// Internal: the state behind `when_all` and `gather`.
//
// A collector holds one slot per input and a countdown of the inputs still
// pending. Each input's continuation takes the input's outcome, stores it in
// the input's own slot (no two threads ever write the same slot, so no lock
// is needed) and counts down; the acquire-release countdown makes every
// slot's write visible to the continuation that counts the last input, which
// builds the output and completes the output future. `gather` (fail-fast)
// completes the output with the first error instead, at once, and discards
// the values that arrive later.
//
// The collector holds no lock at all, so no user code (values' moves and
// destructors, the output's continuations) runs under one of weave's locks.
// It is kept alive by the continuations attached to its inputs; the output
// future is independent of it (cancelling the output completes only the
// output; the inputs' outcomes still arrive and are discarded).

#include <atomic>
#include <cstddef>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "caf/expected.hpp"
#include "caf/intrusive_ptr.hpp"
#include "caf/make_counted.hpp"
#include "caf/ref_counted.hpp"
#include "caf/unit.hpp"

#include "runtime/future.hpp"
#include "runtime/internal/callback.hpp"
#include "runtime/internal/compose.hpp"
#include "runtime/internal/future_state.hpp"

namespace weave::internal {

/// The value `gather` keeps of a successful outcome.
template <class T>
gather_value_t<T> value_of(caf::expected<T>&& res) {
  if constexpr (std::is_void<T>::value)
    return caf::unit;
  else
    return std::move(*res);
}

/// What both collectors share: the countdown, the fail-fast flag and the
/// output. `Derived` provides `Out build()`.
template <class Derived, class Out, bool FailFast>
class all_collector : public caf::ref_counted {
public:
  future<Out> output() const {
    return make_future(out_);
  }

protected:
  explicit all_collector(size_t inputs)
    : remaining_(inputs), out_(caf::make_counted<future_state<Out>>()) {
    // nop
  }

  /// Records one input's outcome with `store`, then counts it down.
  template <class T, class Store>
  void on_outcome(caf::expected<T>&& res, Store store) noexcept {
    try {
      if constexpr (FailFast) {
        if (!res)
          fail(std::move(res.error()));
        else if (!failed_.load(std::memory_order_acquire))
          store(std::move(res));
      } else {
        store(std::move(res));
      }
    } catch (...) { // the value's move threw: that is this input's outcome
      auto err = current_exception_error();
      if constexpr (FailFast)
        fail(std::move(err));
      else
        store(caf::expected<T>{std::move(err)});
    }
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      finish();
  }

  /// Completes the output from the slots (unless it failed fast).
  void finish() noexcept {
    if (FailFast && failed_.load(std::memory_order_acquire))
      return;
    try {
      set_value_noexcept(*out_, static_cast<Derived*>(this)->build());
    } catch (...) { // building the output threw (out of memory, a move)
      out_->set_error(current_exception_error());
    }
  }

private:
  void fail(caf::error err) noexcept {
    if (!failed_.exchange(true, std::memory_order_acq_rel))
      out_->set_error(std::move(err));
  }

  std::atomic<size_t> remaining_;
  std::atomic<bool> failed_{false};
  future_state_ptr<Out> out_;
};

template <class T, bool FailFast>
using range_output_t
  = std::conditional_t<FailFast, std::vector<gather_value_t<T>>,
                       std::vector<caf::expected<T>>>;

/// The collector for a range of `future<T>`.
template <class T, bool FailFast>
class range_collector final
  : public all_collector<range_collector<T, FailFast>,
                         range_output_t<T, FailFast>, FailFast> {
public:
  using super = all_collector<range_collector<T, FailFast>,
                              range_output_t<T, FailFast>, FailFast>;
  using output_type = range_output_t<T, FailFast>;

  explicit range_collector(size_t inputs) : super(inputs), slots_(inputs) {
    // nop
  }

  /// Attaches a continuation to every input (completes at once if none).
  void start(const std::vector<future_state_ptr<T>>& inputs) {
    if (inputs.empty()) {
      this->finish();
      return;
    }
    for (size_t i = 0; i < inputs.size(); ++i) {
      auto& st = inputs[i];
      st->on_complete(callback{
        [self = caf::intrusive_ptr<range_collector>{this}, st, i] {
          self->deliver(i, take_outcome(*st));
        }});
    }
  }

  output_type build() {
    output_type out;
    out.reserve(slots_.size());
    for (auto& slot : slots_) {
      if constexpr (FailFast)
        out.push_back(value_of(std::move(*slot)));
      else
        out.push_back(std::move(*slot));
    }
    return out;
  }

private:
  void deliver(size_t i, caf::expected<T>&& res) noexcept {
    this->on_outcome(std::move(res), [this, i](caf::expected<T>&& r) {
      slots_[i].emplace(std::move(r));
    });
  }

  std::vector<std::optional<caf::expected<T>>> slots_;
};

template <bool FailFast, class... Ts>
using tuple_output_t
  = std::conditional_t<FailFast, std::tuple<gather_value_t<Ts>...>,
                       std::tuple<caf::expected<Ts>...>>;

/// The collector for a fixed list of futures of different types.
template <bool FailFast, class... Ts>
class tuple_collector final
  : public all_collector<tuple_collector<FailFast, Ts...>,
                         tuple_output_t<FailFast, Ts...>, FailFast> {
public:
  using super = all_collector<tuple_collector<FailFast, Ts...>,
                              tuple_output_t<FailFast, Ts...>, FailFast>;
  using output_type = tuple_output_t<FailFast, Ts...>;

  tuple_collector() : super(sizeof...(Ts)) {
    // nop
  }

  /// Attaches a continuation to every input (completes at once if none).
  void start(const std::tuple<future_state_ptr<Ts>...>& inputs) {
    start_impl(inputs, std::index_sequence_for<Ts...>{});
  }

  output_type build() {
    return build_impl(std::index_sequence_for<Ts...>{});
  }

private:
  template <size_t... Is>
  void start_impl(const std::tuple<future_state_ptr<Ts>...>& inputs,
                  std::index_sequence<Is...>) {
    (void) inputs; // unused for an empty list
    if constexpr (sizeof...(Ts) == 0)
      this->finish();
    else
      (attach<Is>(std::get<Is>(inputs)), ...);
  }

  template <size_t I, class T>
  void attach(const future_state_ptr<T>& st) {
    st->on_complete(
      callback{[self = caf::intrusive_ptr<tuple_collector>{this}, st] {
        self->template deliver<I>(take_outcome(*st));
      }});
  }

  template <size_t I, class T>
  void deliver(caf::expected<T>&& res) noexcept {
    this->on_outcome(std::move(res), [this](caf::expected<T>&& r) {
      std::get<I>(slots_).emplace(std::move(r));
    });
  }

  template <size_t... Is>
  output_type build_impl(std::index_sequence<Is...>) {
    if constexpr (FailFast)
      return output_type{value_of(std::move(*std::get<Is>(slots_)))...};
    else
      return output_type{std::move(*std::get<Is>(slots_))...};
  }

  std::tuple<std::optional<caf::expected<Ts>>...> slots_;
};

/// Checks the inputs, attaches the collector, returns its output.
template <class T, bool FailFast>
future<range_output_t<T, FailFast>>
collect_range(const char* op, const std::vector<future<T>>& fs) {
  auto states = checked_states(op, fs);
  auto c = caf::make_counted<range_collector<T, FailFast>>(states.size());
  auto out = c->output();
  c->start(states);
  return out;
}

template <bool FailFast, class... Ts, size_t... Is>
future<tuple_output_t<FailFast, Ts...>>
collect_tuple(const char* op, std::index_sequence<Is...>,
              const future<Ts>&... fs) {
  (void) op; // unused for an empty list
  (check_input(op, Is, fs), ...);
  auto c = caf::make_counted<tuple_collector<FailFast, Ts...>>();
  auto out = c->output();
  c->start(std::tuple<future_state_ptr<Ts>...>{state_of(fs)...});
  return out;
}

} // namespace weave::internal
