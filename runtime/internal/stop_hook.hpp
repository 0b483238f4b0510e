#pragma once

// Internal: a callable registered with a stop state, the machinery behind
// `stop_callback<F>` and behind weave's stop-aware waits.
//
// `stop_hook<F>` owns `F` and a `stop_callback_node`. Registering
// (`attach`) may run `F` at once, on the registering thread, if the stop was
// already requested. Its destructor deregisters (`detach`), waiting for a
// run of `F` on another thread to return. Weave's own waits need one more
// step: their hook takes the waiter's lock before it notifies, so a waiter
// that still holds that lock must not wait for the hook to return. They
// call `try_detach()` with the lock held and, when it says the hook runs on
// another thread, release the lock, `detach()`, and take the lock again.
//
// Thread-safety: one thread owns a hook (constructs and destroys it); `F`
// runs on the owner's thread (in `attach`) or on the thread that requests
// the stop, never under the stop state's lock.

#include <type_traits>
#include <utility>

#include "runtime/internal/stop_state.hpp"

namespace weave::internal {

template <class F>
class stop_hook : private stop_callback_node {
public:
  template <class C>
  explicit stop_hook(C&& fn) noexcept(std::is_nothrow_constructible<F, C>::value)
    : stop_callback_node(&run), fn_(std::forward<C>(fn)) {
    // nop
  }

  stop_hook(const stop_hook&) = delete;
  stop_hook& operator=(const stop_hook&) = delete;

  ~stop_hook() {
    detach();
  }

  using stop_callback_node::attach;
  using stop_callback_node::detach;
  using stop_callback_node::try_detach;

private:
  static void run(stop_callback_node* node) noexcept {
    static_cast<stop_hook*>(node)->fn_();
  }

  F fn_;
};

} // namespace weave::internal
