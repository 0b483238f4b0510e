#pragma once

/// `labeled(label, fn)`: gives a job a name that thread dumps show
/// (`runtime::dump()`), the answer to "which job has been running for an
/// hour?".
///
///     offload(self, io, weave::labeled("fetch user", [=] { ... }))
///       .then(...);
///     pool.submit(weave::labeled("resize " + path, [=] { ... }));
///     lp.submit(weave::labeled("poll feed", [](loop_context& cx) { ... }));
///
/// The result is a function object that calls `fn` with whatever it is given
/// (nothing, a `stop_token`, a `loop_context&`), so it goes wherever a job's
/// function goes: `offload`, `blocking_pool::submit`, `spawn_blocker`,
/// `loop::submit` / `post`. A label that is a string literal (`const char*`)
/// is kept as a pointer: no allocation, and the pointer must stay valid
/// until the job has started (a literal always does). A `std::string` label
/// is kept inside the job. Jobs without a label cost nothing extra. A
/// running job's thread copies its label (up to 63 bytes; longer ones are
/// cut) when the job starts, so a dump never refers to a job that has gone.
///
/// Thread-safety: a plain value, moved into the job.

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace weave {

/// A function with a label; see the header comment.
template <class F, class Label>
class labeled_fn {
public:
  labeled_fn(Label label, F fn)
    : label_(std::move(label)), fn_(std::move(fn)) {
    // nop
  }

  template <class... Ts>
  auto operator()(Ts&&... xs)
    -> decltype(std::declval<F&>()(std::forward<Ts>(xs)...)) {
    return fn_(std::forward<Ts>(xs)...);
  }

  /// The label.
  std::string_view label() const noexcept {
    return std::string_view{label_};
  }

private:
  Label label_;
  F fn_;
};

/// `fn` labelled with a string that outlives the job's start (a literal).
template <class F>
labeled_fn<F, const char*> labeled(const char* label, F fn) {
  return {label != nullptr ? label : "", std::move(fn)};
}

/// `fn` labelled with a string the job keeps.
template <class F>
labeled_fn<F, std::string> labeled(std::string label, F fn) {
  return {std::move(label), std::move(fn)};
}

namespace internal {

template <class F>
struct is_labeled : std::false_type {};

template <class F, class Label>
struct is_labeled<labeled_fn<F, Label>> : std::true_type {};

/// The label of a job's function, or an empty view.
template <class F>
std::string_view label_of(const F& fn) noexcept {
  if constexpr (is_labeled<F>::value)
    return fn.label();
  else
    return {};
}

} // namespace internal

} // namespace weave
