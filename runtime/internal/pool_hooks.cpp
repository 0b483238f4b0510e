#include "runtime/internal/pool_hooks.hpp"

// Empty unless the pool's test hooks are compiled in (see pool_hooks.hpp).

#ifdef WEAVE_POOL_TEST_HOOKS

#include <atomic>

namespace weave::internal {

namespace {

std::atomic<pool_hook_fn> installed_hook{nullptr};

} // namespace

void set_pool_hook(pool_hook_fn fn) noexcept {
  installed_hook.store(fn, std::memory_order_release);
}

void run_pool_hook(pool_hook_point point, const std::string& pool) {
  if (auto fn = installed_hook.load(std::memory_order_acquire))
    fn(point, pool);
}

} // namespace weave::internal

#endif
