#pragma once

/// `when_any`: the first of many futures to complete, the C++ answer to
/// `asyncio.wait(..., return_when=FIRST_COMPLETED)`.
///
///     auto r = weave::when_any(std::move(replicas)).get();
///     use(r.index, r.outcome);           // the first to answer
///     for (auto& f : r.futures)          // the others, still usable
///       if (f.valid()) f.cancel();
///
/// Operations
/// - `when_any(std::vector<future<T>>)` and `when_any(first, last)` →
///   `future<when_any_result<T>>`, which completes as soon as one input
///   completes (with a value or an error), holding
///   - `index`: that input's position (counting from 0),
///   - `outcome`: its `result<T>`, taken from it,
///   - `futures`: every input handed back in input order, with
///     `futures[index]` left invalid. The other inputs are untouched: their
///     values are still there for `get`, `then`, another `when_any` (to wait
///     for the next one; `as_completed` does that for a whole set in one
///     pass) or `cancel`.
///   If several inputs are complete already, or complete at once, exactly
///   one of them wins; which one is not specified.
/// - No inputs: throws `weave::exception` with `invalid_argument` (there is
///   no first to complete, and nothing could ever complete the result).
/// - Bad input is refused at the call, with nothing consumed: an invalid
///   future throws `invalid_argument`, one whose value `get()` or `then()`
///   already took throws `already_retrieved`; both messages name the
///   input's position.
/// - `cancel()` on the result: if no input has completed yet, the result
///   completes with `cancelled` and no input's value is taken; the inputs are
///   not cancelled (they are shared handles; cancel them yourself). Returns
///   false once an input has won.
///
/// Each call leaves a small continuation on every input that did not win,
/// which does nothing when that input completes; waiting for N inputs one by
/// one with `when_any` therefore costs O(N²) continuations, `as_completed`
/// O(N).
///
/// Thread-safety: callable from any thread (a plain thread, a loop, an
/// actor); it never blocks. The winner's completion happens-before the result
/// completes; the result's continuations run on the winner's completing
/// thread (or at once on the caller's if an input was complete already),
/// with no weave lock held — `when_any` holds no lock at all.
///
/// Lifetime and shutdown: owns no thread, is not registered with the
/// runtime; its state lives until every input has completed. At shutdown,
/// pool and loop futures complete with `shut_down`, and the first of them
/// completes the result.

#include <iterator>
#include <utility>
#include <vector>

#include "caf/make_counted.hpp"

#include "runtime/error.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/compose.hpp"
#include "runtime/internal/when_any_state.hpp"

namespace weave {

/// What `when_any` completes with: which input completed first, its
/// outcome, and every input handed back.
template <class T>
struct when_any_result {
  /// The winner's position in the input (counting from 0).
  size_t index;

  /// The winner's outcome, taken from it.
  result<T> outcome;

  /// The inputs, in input order. `futures[index]` is left invalid (its
  /// outcome is `outcome`); the others are untouched: pending or complete,
  /// their values still there for whoever reads them next.
  std::vector<future<T>> futures;
};

/// The first of `fs` to complete; see the header comment.
template <class T>
future<when_any_result<T>> when_any(std::vector<future<T>> fs) {
  if (fs.empty())
    raise(make_error(errc::invalid_argument,
                     "when_any: no futures given (an empty range has no "
                     "first to complete)"));
  auto states = internal::checked_states("when_any", fs);
  auto st = caf::make_counted<internal::any_state<T>>(std::move(fs));
  auto out = st->output();
  st->start(states);
  return out;
}

/// The first of the futures in [`first`, `last`) to complete.
template <class It, class = std::enable_if_t<internal::is_future<
                      typename std::iterator_traits<It>::value_type>::value>>
future<when_any_result<typename std::iterator_traits<It>::value_type::value_type>>
when_any(It first, It last) {
  using value_type = typename std::iterator_traits<It>::value_type::value_type;
  return when_any(std::vector<future<value_type>>(first, last));
}

} // namespace weave
