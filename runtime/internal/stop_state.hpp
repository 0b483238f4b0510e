#pragma once

// Internal: the shared state behind `stop_source`, `stop_token` and
// `stop_callback` (see runtime/stop_token.hpp for the contract).
//
// One reference-counted object holds
// - the cause of the stop (`cause_`, 0 until the first request; an atomic,
//   so `stop_requested()` is one load and allocates nothing),
// - the number of live sources (`sources_`, for `stop_possible()`),
// - the registered callbacks: an intrusive, doubly linked list of
//   `stop_callback_node`s (the nodes live inside the `stop_callback`
//   objects, so registering allocates nothing), guarded by `mtx_`.
//
// Running callbacks: `request_stop` sets the cause under `mtx_`, then takes
// the nodes off the list one at a time. For each it marks the node as
// running (`running_`), releases `mtx_`, calls it, and takes `mtx_` again.
// So no callback (user code) ever runs while `mtx_` is held, and a callback
// may itself register, deregister or request a stop. A node that is not on
// the list and not running has run (or never was registered): deregistering
// it does nothing. Deregistering a node that runs on another thread waits
// (on `done_`) until it returned; on the stopping thread itself (a callback
// that destroys its own `stop_callback`) it returns at once, and
// `request_stop` no longer touches the node once its callback returned.
//
// Registering after the stop runs the callback at once, on the registering
// thread, with no lock held.
//
// Reference counting: the state itself says how it is counted
// (`ref_state` / `deref_state`, what `stop_state_ptr` calls). A state made
// for a `stop_source` (`counted_stop_state`) is an allocation of its own
// with its own count. A job whose function takes a token embeds its state
// instead (see job_stop.hpp): that state counts its tokens and registered
// callbacks plus one reference held by the job, and the last one to go
// destroys the job's memory; so a token stays readable after its job ended,
// without a second allocation per job.
//
// Thread-safety: every member may be called from any thread. Setting the
// cause happens-before `stop_requested()` returns true (release/acquire)
// and before every callback runs.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

#include "caf/intrusive_ptr.hpp"
#include "caf/ref_counted.hpp"

#include "runtime/error.hpp"

namespace weave::internal {

class stop_state;

/// One registered callback: a node of `stop_state`'s list. The links are
/// guarded by the state's lock.
class stop_callback_node {
public:
  /// Calls the callback; `noexcept`, so a callback that throws ends the
  /// program (`std::terminate`).
  using invoke_fn = void (*)(stop_callback_node*) noexcept;

  explicit stop_callback_node(invoke_fn fn) noexcept : invoke_(fn) {
  }

  stop_callback_node(const stop_callback_node&) = delete;
  stop_callback_node& operator=(const stop_callback_node&) = delete;

  ~stop_callback_node() = default;

  /// Registers with `st` (may be null: nothing happens). If the stop was
  /// already requested, calls the callback now, on this thread.
  void attach(stop_state* st);

  /// Deregisters; if the callback runs on another thread now, waits until
  /// it returned. On the thread that runs it, returns at once.
  void detach() noexcept;

  /// Deregisters unless the callback runs on another thread now; false in
  /// that case (nothing changed: call `detach()` later, e.g. after releasing
  /// a lock that the callback needs).
  bool try_detach() noexcept;

private:
  friend class stop_state;

  invoke_fn invoke_;
  caf::intrusive_ptr<stop_state> state_;
  stop_callback_node* prev_ = nullptr;
  stop_callback_node* next_ = nullptr;
  bool linked_ = false;
};

class stop_state {
public:
  stop_state() = default;
  stop_state(const stop_state&) = delete;
  stop_state& operator=(const stop_state&) = delete;

  /// Adds a reference (a token, a source, a registered callback).
  virtual void ref_state() const noexcept = 0;

  /// Drops a reference; the last one destroys the state (and whatever
  /// holds it, for an embedded state).
  virtual void deref_state() const noexcept = 0;

  /// The cause of the stop; `errc{}` (0) before one was requested.
  errc cause() const noexcept {
    return static_cast<errc>(cause_.load(std::memory_order_acquire));
  }

  bool stop_requested() const noexcept {
    return cause_.load(std::memory_order_acquire) != 0;
  }

  /// True if a stop was requested or a source could still request one.
  bool stop_possible() const noexcept {
    return stop_requested() || sources_.load(std::memory_order_acquire) > 0;
  }

  void add_source() noexcept {
    sources_.fetch_add(1, std::memory_order_relaxed);
  }

  void release_source() noexcept {
    sources_.fetch_sub(1, std::memory_order_acq_rel);
  }

  /// Requests the stop with `cause` (not 0) and runs every registered
  /// callback on this thread; false (and nothing runs) if a stop was
  /// requested before.
  bool request_stop(errc cause) noexcept;

protected:
  /// Destroyed only by its own `deref_state`, never through this type.
  virtual ~stop_state() = default;

private:
  friend class stop_callback_node;

  friend void intrusive_ptr_add_ref(const stop_state* st) noexcept {
    st->ref_state();
  }

  friend void intrusive_ptr_release(const stop_state* st) noexcept {
    st->deref_state();
  }

  /// Unlinks `node`. Call with `mtx_` held and `node->linked_`.
  void unlink(stop_callback_node* node) noexcept;

  std::atomic<uint8_t> cause_{0};
  std::atomic<size_t> sources_{0};
  std::mutex mtx_;
  /// Signalled when a callback run by `request_stop` returned.
  std::condition_variable done_;
  stop_callback_node* head_ = nullptr;
  /// The callback `request_stop` runs now (without `mtx_`), or null.
  stop_callback_node* running_ = nullptr;
  /// The thread that runs the callbacks (valid once the stop is requested).
  std::thread::id stopping_thread_;
};

using stop_state_ptr = caf::intrusive_ptr<stop_state>;

/// A stop state that is an allocation of its own (a `stop_source`'s).
class counted_stop_state final : public caf::ref_counted, public stop_state {
public:
  void ref_state() const noexcept override {
    ref();
  }

  void deref_state() const noexcept override {
    deref();
  }

private:
  // Both bases offer these; the most derived one is the unambiguous match.
  friend void intrusive_ptr_add_ref(const counted_stop_state* st) noexcept {
    st->ref();
  }

  friend void intrusive_ptr_release(const counted_stop_state* st) noexcept {
    st->deref();
  }
};

} // namespace weave::internal
