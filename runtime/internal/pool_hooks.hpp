#pragma once

// Internal, for tests only: pause and fault-injection points inside a
// blocking_pool's workers and worker spawns, and a process pool's sends.
//
// Some races in a pool have windows of a few instructions (a worker between
// taking a job and publishing it, a spawn that fails half-way); a test can
// only hit them reliably by stopping a thread inside the window, or by making
// a spawn throw. The hook points are compiled in only when
// `WEAVE_POOL_TEST_HOOKS` is defined (the `//runtime:runtime_test_hooks`
// target, which tests link instead of `//runtime`); in every other build
// `run_pool_hook` is an empty inline function and costs nothing.
//
// A hook may block (the point is to hold a thread inside a window) or throw
// (`spawning` only: it stands in for a failed spawn). It runs without any of
// the pool's locks held, except at `spawning`, which runs where the spawn
// runs (under the pool's live-worker lock): a hook there must neither block
// on another thread of the same pool nor touch the pool.
//
// Thread-safety: `set_pool_hook` may be called from any thread; a hook runs
// on the thread at the point (a worker, or the thread starting a worker).

#include <string>

namespace weave::internal {

enum class pool_hook_point {
  /// A worker took a job out of the queue, before it claims it for running
  /// (or drops it because its deadline passed).
  popped,
  /// A worker claimed a job for running, before it runs it.
  started,
  /// A worker is about to be spawned; a throwing hook makes the spawn fail.
  spawning,
  /// A process pool granted jobs as it sent them and is about to hand
  /// their message to CAF (no lock held).
  granted_send,
  /// A process pool is about to send the revoke of a job whose deadline
  /// passed (on the runtime's timer thread, no lock held).
  deadline_revoke,
};

/// Called at each point with the pool's name.
using pool_hook_fn = void (*)(pool_hook_point point, const std::string& pool);

#ifdef WEAVE_POOL_TEST_HOOKS

inline constexpr bool pool_hooks_enabled = true;

/// Installs `fn` (null: none) for every pool of the process.
void set_pool_hook(pool_hook_fn fn) noexcept;

/// Runs the installed hook, if any.
void run_pool_hook(pool_hook_point point, const std::string& pool);

#else

inline constexpr bool pool_hooks_enabled = false;

inline void run_pool_hook(pool_hook_point, const std::string&) noexcept {
  // nop: hooks are compiled out
}

#endif

} // namespace weave::internal
