#pragma once

// Internal: what `when_all`, `gather`, `when_any` and `as_completed` share.
//
// Each combinator checks its inputs before it touches any of them (so a bad
// input is refused with nothing consumed), then attaches one continuation per
// input with `future_state::on_complete`. A continuation runs on the thread
// that completes its input, with no weave lock held, and must not throw (it
// runs inside the input's completion): `take_outcome` turns an exception
// from moving the value into that input's error.

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "caf/expected.hpp"
#include "caf/unit.hpp"

#include "runtime/error.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/job.hpp"

namespace weave::internal {

/// What `gather` holds for an input of type `T`: the value, or `caf::unit_t`
/// for `void`.
template <class T>
using gather_value_t
  = std::conditional_t<std::is_void<T>::value, caf::unit_t, T>;

/// Refuses an input that can never deliver: an invalid future
/// (`invalid_argument`), or one whose value `get()` or `then()` already
/// took (`already_retrieved`). The message names `op` and `pos`.
template <class T>
void check_input(const char* op, size_t pos, const future<T>& f) {
  auto& st = state_of(f);
  auto where = std::string{op} + ": the future at position "
               + std::to_string(pos);
  if (!st)
    raise(make_error(errc::invalid_argument,
                     where + " is invalid (default-constructed or moved "
                             "from)"));
  if (st->value_taken())
    raise(make_error(errc::already_retrieved,
                     where + " was already consumed: its value was taken by "
                             "get() or then()"));
}

/// Checks every input (see `check_input`) and returns their states, in
/// input order.
template <class T>
std::vector<future_state_ptr<T>>
checked_states(const char* op, const std::vector<future<T>>& fs) {
  std::vector<future_state_ptr<T>> result;
  result.reserve(fs.size());
  for (size_t i = 0; i < fs.size(); ++i) {
    check_input(op, i, fs[i]);
    result.push_back(state_of(fs[i]));
  }
  return result;
}

/// Takes the outcome of the completed `st`; an exception (a throwing move
/// of the value) becomes the error.
template <class T>
caf::expected<T> take_outcome(future_state<T>& st) noexcept {
  try {
    return st.take();
  } catch (...) {
    return current_exception_error();
  }
}

/// Completes `st` with `value`; false if another outcome was there first.
/// A throwing move of the value completes `st` with that error instead.
template <class T, class U>
bool set_value_noexcept(future_state<T>& st, U&& value) noexcept {
  try {
    return st.set_value(std::forward<U>(value));
  } catch (...) {
    return false; // set_value stored the exception's error
  }
}

/// Calls `cb` with `x`: as an rvalue where `cb` accepts one, else as an
/// lvalue.
template <class F, class X>
void call_with_value(F& cb, X& x) {
  if constexpr (std::is_invocable<F&, X&&>::value)
    cb(std::move(x));
  else
    cb(x);
}

} // namespace weave::internal
