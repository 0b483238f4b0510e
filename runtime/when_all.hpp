#pragma once

/// `when_all` and `gather`: one future for many, the C++ answer to
/// `asyncio.gather(..., return_exceptions=True)` and `asyncio.gather(...)`.
///
///     auto a = pool.submit(load_user);                 // future<user>
///     auto b = pool.submit(load_orders);               // future<orders>
///     auto [u, o] = weave::gather(a, b).get();         // both values, or throws
///     auto rs = weave::when_all(std::move(jobs)).get(); // vector<result<T>>
///
/// Operations
/// - `when_all(f1, f2, ...)` → `future<std::tuple<result<T1>, result<T2>,
///   ...>>`: completes once every input has, with every input's outcome
///   (value or error), in argument order. It never fails because an input
///   did.
/// - `when_all(std::vector<future<T>>)` and `when_all(first, last)` →
///   `future<std::vector<result<T>>>`, in input order. No inputs: complete
///   at once with an empty vector.
/// - `gather(f1, f2, ...)` → `future<std::tuple<T1, T2, ...>>` and
///   `gather(std::vector<future<T>>)` / `gather(first, last)` →
///   `future<std::vector<T>>`: fail-fast. The first error to arrive fails
///   the result at once, while the other inputs may still be pending; their
///   outcomes are taken and discarded when they arrive. Otherwise the values,
///   in input order.
/// - `void` inputs: `when_all` reports them as `result<void>` (an error or
///   nothing); `gather` holds `caf::unit_t` in their place.
///
/// The inputs are consumed, like `then` consumes its future: each input's
/// value is moved into the result, and a copy of an input future held
/// elsewhere then reads `already_retrieved`. An error is not consumed (every
/// reader sees it).
///
/// Bad input is refused at the call, before anything is consumed: an invalid
/// (default-constructed or moved-from) future throws `weave::exception` with
/// `invalid_argument`, a future whose value `get()` or `then()` already took
/// throws `already_retrieved`; both messages name the function and the
/// input's position (counting from 0). An input `then`-ed while still
/// pending cannot be told apart at the call: its earlier continuation takes
/// the value, and its slot reads `already_retrieved` — as does the second
/// slot of a future passed twice.
///
/// `cancel()` on the result completes the result with `cancelled` and leaves
/// the inputs alone: input futures are shared handles (one job may be awaited
/// by several callers), and cancelling a `then` result does not cancel its
/// source either. To stop the inputs, cancel them: the caller holds them.
///
/// Thread-safety: callable from any thread — a plain thread, a loop's
/// thread, an actor's handler; it never blocks. The result is an ordinary
/// `future`: `get()` it on a plain thread, `then` it anywhere. Each input's
/// completion happens-before the result completes. The result's
/// continuations run on the thread that completes the last input (or, for a
/// failing `gather`, the failing one), with no weave lock held; the
/// combinators hold no lock of their own at all, so no user code (values'
/// moves and destructors, continuations) runs under one.
///
/// Waiting on a pool worker: `get()` on a single job's future refuses
/// (`would_deadlock`) when every worker of its pool would end up waiting
/// for queued work; a combined future does not know its inputs' pools, so
/// a worker that waits on one for jobs queued in its own busy pool waits
/// until they run. Wait with `wait_for`, or combine in an actor or a loop.
///
/// Lifetime and shutdown: the combinators own no thread and are not
/// registered with the runtime. Their state lives until every input has
/// completed, whether or not anyone still holds the result; every input
/// ends (a pool or loop answers with `shut_down` at shutdown, a destroyed
/// promise with `broken_promise`), so nothing waits for ever and nothing
/// leaks.

#include <iterator>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/future.hpp"
#include "runtime/internal/when_all_state.hpp"

namespace weave {

namespace internal {

/// The `T` of an iterator over `future<T>`.
template <class It>
using future_value_of_t =
  typename std::iterator_traits<It>::value_type::value_type;

template <class It>
using enable_if_iterator_t = std::enable_if_t<
  !is_future<std::decay_t<It>>::value
  && is_future<typename std::iterator_traits<It>::value_type>::value>;

} // namespace internal

/// Every outcome of the inputs, in argument order; see the header comment.
template <class... Ts>
future<std::tuple<result<Ts>...>> when_all(future<Ts>... fs) {
  return internal::collect_tuple<false, Ts...>(
    "when_all", std::index_sequence_for<Ts...>{}, fs...);
}

/// Every outcome of the inputs, in input order.
template <class T>
future<std::vector<result<T>>> when_all(std::vector<future<T>> fs) {
  return internal::collect_range<T, false>("when_all", fs);
}

/// Every outcome of the futures in [`first`, `last`), in order.
template <class It, class = internal::enable_if_iterator_t<It>>
future<std::vector<result<internal::future_value_of_t<It>>>>
when_all(It first, It last) {
  return when_all(
    std::vector<future<internal::future_value_of_t<It>>>(first, last));
}

/// Every value of the inputs in argument order, or the first error to
/// arrive; see the header comment.
template <class... Ts>
future<std::tuple<internal::gather_value_t<Ts>...>> gather(future<Ts>... fs) {
  return internal::collect_tuple<true, Ts...>(
    "gather", std::index_sequence_for<Ts...>{}, fs...);
}

/// Every value of the inputs in input order, or the first error to arrive.
template <class T>
future<std::vector<internal::gather_value_t<T>>>
gather(std::vector<future<T>> fs) {
  return internal::collect_range<T, true>("gather", fs);
}

/// Every value of the futures in [`first`, `last`), or the first error.
template <class It, class = internal::enable_if_iterator_t<It>>
future<std::vector<internal::gather_value_t<internal::future_value_of_t<It>>>>
gather(It first, It last) {
  return gather(
    std::vector<future<internal::future_value_of_t<It>>>(first, last));
}

} // namespace weave
