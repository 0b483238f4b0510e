#pragma once

/// `channel<T>`: a bounded multi-producer, multi-consumer queue that plain
/// threads, blocking actors and event-based actors can all use, mixed — the
/// C++ answer to `queue.Queue(maxsize)` between threads and coroutines, and
/// to reading one with `await loop.run_in_executor(None, q.get)` (which
/// spends a pool thread per item).
///
/// Plain threads and blocking actors
/// - `put(x)` blocks while full; `put(x, timeout)`; `try_put(x)`.
/// - `get()` blocks while empty; `get(timeout)`; `try_get()`.
/// - Each returns a `channel_status` (or a `channel_result<T>` holding the
///   value) that says exactly which of ok / timeout / closed / full / empty /
///   dropped / stopped happened. Pass an rvalue and the item is moved from only when
///   the channel accepted it: after `timeout`, `full`, `closed` or `dropped`
///   the caller still owns it (a `std::unique_ptr` stays valid).
/// - With a `stop_token`: `put(x, tok)`, `put(x, timeout, tok)`,
///   `get(tok)`, `get(timeout, tok)` also end, promptly, when `tok` is
///   stopped while they wait: they return `stopped` (the token's `cause()`
///   says why), and nothing was put (the caller still owns `x`) or taken.
///   The token is looked at only when the call would wait: with room (or
///   an item) at hand, the call succeeds.
/// - Timeouts saturate: `hours::max()` waits for ever; a negative timeout
///   throws `invalid_argument`.
///
/// Event-based actors
/// - Consumer: `subscribe(self, credit)`. Items arrive as ordinary messages,
///   `channel_batch<T>` (many items per message when the consumer is slower
///   than its producers), then one `channel_closed` after the last item.
///   Credit returns by itself: when a batch message is destroyed (normally
///   right after the handler that received it returns), its items' credit
///   goes back to the channel. So the actor's mailbox never holds more than
///   `credit` items, and a slow consumer holds back fast producer threads
///   (they block in `put` once the channel is full): backpressure end to end.
/// - Producer: `send(self, x)` never blocks; its handle's `then` runs in
///   the actor once the item is in the channel (runtime/channel_send.hpp):
///   on a full `block` channel the item waits in the channel, outside its
///   capacity, in order. `offer(self, x)` is the lower-level form: if the
///   channel is full it returns `full` and later sends `self` one
///   `channel_writable` message when there is room (or when it closes).
/// - Inside a `loop`: `send(cx, x)` returns a future that completes in the
///   loop once the item is accepted. `consume(cx, on_item)` runs `on_item`
///   in the loop for every item and returns a future that completes at
///   end-of-stream, or fails with `shut_down` if the loop stops first. An
///   `on_item` that returns a future paces the consumer: the next item is
///   taken only while fewer than `credit` of those futures are pending.
/// - A subscriber that dies loses nothing: the items of a batch it had not
///   read (still in its mailbox) go back to the front of the channel, in
///   order, for the other consumers — threads or subscribers. A batch its
///   handler had opened (`items()`) counts as consumed. If it was the last
///   subscriber, the channel closes (reason: its exit reason), so producers
///   are released instead of blocking for ever; what is queued stays for
///   thread consumers.
/// - The channel keeps a subscriber alive (it holds a reference to it) until
///   it has sent it `channel_closed`, no longer: an actor that nothing else
///   references is destroyed after it handled the end, like any CAF actor.
/// - A batch on its way keeps the channel alive: a producer may `close()`
///   and drop its last handle at once, and the subscriber still gets the
///   rest of the items, then `channel_closed`.
///
/// `close()`: further puts fail with `closed`; consumers drain what is left,
/// then see end-of-stream (threads: `closed`; actors: `channel_closed`).
/// Blocked producers and consumers are released at once. The runtime's
/// shutdown closes every channel still open; subscribers keep draining it
/// while user actors get their time, and whatever actor a channel still
/// holds when the runtime destroys its actor system is let go of first
/// (its unread batch goes back to the channel; a `consume` future fails with
/// `shut_down`). A channel may outlive its runtime, in any state: threads
/// can still drain it, and `subscribe` throws `shut_down`.
///
/// Overflow policy, chosen at creation, for a put on a full channel:
/// `block` (default: wait), `drop_newest` (discard the new item, return
/// `dropped`), `drop_oldest` (evict the oldest queued item, accept the new
/// one), `fail` (return `full`). Discarded items are counted in
/// `stats().drops`, refusals by `fail` in `stats().refused`.
///
/// Wake-ups: a waiting producer (a blocked thread, or an actor told `full`)
/// is woken by the first item that leaves a full channel — it never waits
/// while there is room. Waking costs nothing while nobody waits: a consumer
/// reads one flag per item, and notifies only after a producer announced that
/// it waits (then once for all blocked threads, plus one `channel_writable`
/// per waiting actor). A blocked consumer is woken by the next item.
///
/// Ordering: FIFO per producer — one queue, and batches are sent to a
/// subscriber one at a time, in order. Items a dead subscriber returns go
/// ahead of everything queued.
///
/// Capacity: the queue never holds more than `capacity` items, except for
/// items returned by a dead subscriber, which may take it over until
/// consumers drain it (producers wait meanwhile). Items in flight to a
/// subscriber are bounded separately by its credit.
///
/// Thread-safety: all members may be called from any thread; copies of a
/// `channel` share one queue. A successful put happens-before the get (or
/// handler) that receives the item. Blocking calls (`put`, `get` without
/// `try_`) refuse to run on a thread that must never block
/// (`would_deadlock`). No user code runs while the channel holds its locks,
/// except an item's constructors (a put moves or copies its item in; items
/// stored inline are moved around): no item destructor (not even of a
/// moved-from item), message, promise, continuation, subscriber callback or
/// actor behaviour is destroyed or run under them. To that end, an item type
/// whose destructor is not trivial, or whose move may throw, is kept in a
/// box of its own while queued (one allocation per item; `int`, `double`
/// and plain structs are stored inline), and is moved out of it by the
/// consumer, after the locks.
///
/// Exceptions: an operation that throws (out of memory, an item's
/// constructor) leaves the channel as it was; a put that throws did not
/// accept its item. A `get` whose item cannot be moved out of its box puts
/// it back at the front and throws. If sending a batch to a subscriber fails
/// for want of memory, its items stay at (or go back to) the front, in
/// order, and the channel tries again on its next operation.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "caf/event_based_actor.hpp"

#include "runtime/channel_batch.hpp"
#include "runtime/channel_send.hpp"
#include "runtime/channel_stats.hpp"
#include "runtime/error.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/loop.hpp"
#include "runtime/runtime.hpp"
#include "runtime/stop_token.hpp"

namespace weave {

/// What a channel operation did.
enum class channel_status : uint8_t {
  ok,
  /// The deadline passed first.
  timeout,
  /// The channel is closed (for gets: closed and drained).
  closed,
  /// Full, and the call does not wait (`try_put`, `fail` policy, `offer`).
  full,
  /// Empty, and the call does not wait (`try_get`).
  empty,
  /// Discarded by the `drop_newest` policy.
  dropped,
  /// The call's stop token was stopped while it waited; the token's
  /// `cause()` says why. Nothing was put or taken.
  stopped,
};

const char* to_string(channel_status s) noexcept;

/// What to do with a put on a full channel.
enum class overflow { block, drop_newest, drop_oldest, fail };

/// A get's outcome: a status and, when it is `ok`, the value.
template <class T>
struct channel_result {
  channel_status status = channel_status::empty;
  std::optional<T> value;

  explicit operator bool() const noexcept {
    return status == channel_status::ok;
  }

  T& operator*() {
    return *value;
  }

  T* operator->() {
    return &*value;
  }
};

namespace internal {

template <class T>
class channel_core;

} // namespace internal

template <class T>
class channel {
public:
  using stats_type = channel_stats;

  /// How many items a loop consumer takes at once by default.
  static constexpr size_t default_loop_credit = 64;

  /// A channel holding at most `capacity` items. Throws `invalid_argument`
  /// for a capacity of 0, `shut_down` if the runtime is shutting down.
  channel(runtime& rt, size_t capacity, overflow policy = overflow::block)
    : channel(capacity, policy) {
    if (rt.shutting_down())
      raise(make_error(errc::shut_down, "the runtime is shut down"));
    core_->bind_to_runtime();
    internal::runtime_access::register_component(rt, core_);
  }

  /// A channel named `name` (in `runtime::metrics()` and its Prometheus
  /// text; names need not be unique), otherwise like the unnamed form.
  channel(runtime& rt, std::string name, size_t capacity,
          overflow policy = overflow::block)
    : channel(capacity, policy) {
    core_->set_name(std::move(name));
    if (rt.shutting_down())
      raise(make_error(errc::shut_down, "the runtime is shut down"));
    core_->bind_to_runtime();
    internal::runtime_access::register_component(rt, core_);
  }

  /// A channel between plain threads only, outside any runtime (so no
  /// shutdown closes it; close it yourself). Actors need the runtime form:
  /// `subscribe`, `consume` and `offer` throw `invalid_argument` here.
  explicit channel(size_t capacity, overflow policy = overflow::block) {
    if (capacity == 0)
      raise(make_error(errc::invalid_argument,
                       "channel: capacity must be at least 1"));
    core_ = std::make_shared<internal::channel_core<T>>(capacity, policy);
  }

  uint64_t id() const noexcept {
    return core_->id();
  }

  /// The name given at creation; empty if none.
  const std::string& name() const noexcept {
    return core_->name();
  }

  // -- plain threads and blocking actors --------------------------------------

  /// Puts `x`, waiting while the channel is full. Moves from `x` only if the
  /// channel accepted it.
  channel_status put(T&& x) {
    internal::check_may_block("channel::put");
    return core_->put(std::move(x), std::nullopt, true);
  }

  channel_status put(const T& x) {
    internal::check_may_block("channel::put");
    return core_->put(x, std::nullopt, true);
  }

  /// Puts `x`, waiting at most `timeout`. Moves from `x` only if accepted.
  template <class Rep, class Period>
  channel_status put(T&& x, std::chrono::duration<Rep, Period> timeout) {
    internal::check_may_block("channel::put");
    return core_->put(std::move(x), deadline(timeout, "put"), true);
  }

  template <class Rep, class Period>
  channel_status put(const T& x, std::chrono::duration<Rep, Period> timeout) {
    internal::check_may_block("channel::put");
    return core_->put(x, deadline(timeout, "put"), true);
  }

  /// Puts `x`, waiting while the channel is full until `tok` is stopped
  /// (`stopped`). Moves from `x` only if accepted.
  channel_status put(T&& x, const stop_token& tok) {
    internal::check_may_block("channel::put");
    return core_->put(std::move(x), std::nullopt, true, &tok);
  }

  channel_status put(const T& x, const stop_token& tok) {
    internal::check_may_block("channel::put");
    return core_->put(x, std::nullopt, true, &tok);
  }

  /// Puts `x`, waiting at most `timeout` or until `tok` is stopped.
  template <class Rep, class Period>
  channel_status put(T&& x, std::chrono::duration<Rep, Period> timeout,
                     const stop_token& tok) {
    internal::check_may_block("channel::put");
    return core_->put(std::move(x), deadline(timeout, "put"), true, &tok);
  }

  template <class Rep, class Period>
  channel_status put(const T& x, std::chrono::duration<Rep, Period> timeout,
                     const stop_token& tok) {
    internal::check_may_block("channel::put");
    return core_->put(x, deadline(timeout, "put"), true, &tok);
  }

  /// Puts `x` if there is room now. Moves from `x` only if accepted.
  channel_status try_put(T&& x) {
    return core_->put(std::move(x), std::nullopt, false);
  }

  channel_status try_put(const T& x) {
    return core_->put(x, std::nullopt, false);
  }

  channel_result<T> get() {
    internal::check_may_block("channel::get");
    return core_->get(std::nullopt, true);
  }

  template <class Rep, class Period>
  channel_result<T> get(std::chrono::duration<Rep, Period> timeout) {
    internal::check_may_block("channel::get");
    return core_->get(deadline(timeout, "get"), true);
  }

  /// Gets an item, waiting while the channel is empty until `tok` is
  /// stopped (`stopped`, and nothing is taken).
  channel_result<T> get(const stop_token& tok) {
    internal::check_may_block("channel::get");
    return core_->get(std::nullopt, true, &tok);
  }

  template <class Rep, class Period>
  channel_result<T> get(std::chrono::duration<Rep, Period> timeout,
                        const stop_token& tok) {
    internal::check_may_block("channel::get");
    return core_->get(deadline(timeout, "get"), true, &tok);
  }

  channel_result<T> try_get() {
    return core_->get(std::nullopt, false);
  }

  // -- event-based actors -----------------------------------------------------

  /// Subscribes `self` with `credit` (at least 1) items in flight at most.
  /// Throws `shut_down` once the runtime is destroying its actor system.
  void subscribe(caf::event_based_actor* self, size_t credit) {
    if (credit == 0)
      raise(make_error(errc::invalid_argument,
                       "channel::subscribe: credit must be at least 1"));
    core_->subscribe_actor(self, credit);
  }

  /// Consumes the channel inside a loop: `on_item(T&)` runs in the loop for
  /// every item, in order, with at most `credit` items handed over at once.
  /// The future completes in the loop with the number of items once the
  /// channel is closed and drained, or fails with `shut_down` if the loop
  /// stops first.
  ///
  /// If `on_item` returns a `future<U>`, the consumer is paced: the next
  /// item is taken only while fewer than `credit` of those futures are
  /// pending, and the result completes once the stream ended and every
  /// future completed. The first failure (a throw, an invalid future, a
  /// failed future) stops it: the items not yet handed to `on_item` go back
  /// to the front of the channel in order, and the result fails with that
  /// error once the futures already pending completed.
  ///
  /// If `on_item` throws, consuming stops there, like an `async for` that
  /// raises: the future fails with the exception's error (`job_failed`
  /// carrying its message, or the `weave::exception`'s own error), the
  /// consumer leaves the channel, and the items it had been handed but not
  /// yet passed to `on_item` go back to the front of the channel, in order,
  /// for the next consumer (another `consume` included). The item that threw
  /// counts as consumed. The channel stays open.
  template <class F>
  future<size_t> consume(loop_context& cx, F on_item,
                         size_t credit = default_loop_credit) {
    if (credit == 0)
      raise(make_error(errc::invalid_argument,
                       "channel::consume: credit must be at least 1"));
    return core_->consume(cx, std::move(on_item), credit);
  }

  /// Puts `x` from an event-based actor, without blocking it: the returned
  /// handle's `then(on_accepted, on_error)` runs in the actor once the item
  /// is in the channel, however long it had to wait for room (see
  /// runtime/channel_send.hpp). Moves from `x` unless it is refused at once.
  send_handle send(caf::event_based_actor* self, T&& x) {
    return core_->send(self, std::move(x));
  }

  send_handle send(caf::event_based_actor* self, const T& x) {
    return core_->send(self, x);
  }

  /// Puts `x` from inside a loop: the future completes in the loop once the
  /// item is in the channel (fails with `closed`, `full` as for the actor
  /// form, or `shut_down` if the loop ends first). Call on the loop's
  /// thread.
  future<void> send(loop_context& cx, T&& x) {
    return core_->send(cx, std::move(x));
  }

  future<void> send(loop_context& cx, const T& x) {
    return core_->send(cx, x);
  }

  /// Puts without blocking; see the header comment for `full`. The item is
  /// moved from only when it was accepted.
  channel_status offer(caf::event_based_actor* self, T&& x) {
    return core_->offer(self, std::move(x));
  }

  channel_status offer(caf::event_based_actor* self, const T& x) {
    return core_->offer(self, x);
  }

  // -- closing and monitoring -------------------------------------------------

  /// Closes the channel; idempotent. True if this call closed it.
  bool close() {
    return core_->close(caf::error{});
  }

  /// Closes the channel because of `reason`, which `close_reason()` reports
  /// from then on (e.g. the exit reason of the actor that fed it). True if
  /// this call closed it.
  bool close(caf::error reason) {
    return core_->close(std::move(reason));
  }

  bool closed() const {
    return core_->closed();
  }

  /// Why the channel closed: none for `close()`, else the error given to
  /// `close(reason)` or, if the last subscribed actor died, its exit reason.
  caf::error close_reason() const {
    return core_->close_reason();
  }

  channel_stats stats() const {
    return core_->stats();
  }

private:
  /// The deadline `timeout` from now; none (wait for ever) when it lies
  /// beyond the clock's range.
  template <class Rep, class Period>
  static std::optional<internal::steady_clock::time_point>
  deadline(std::chrono::duration<Rep, Period> timeout, const char* what) {
    if (timeout < timeout.zero())
      raise(make_error(errc::invalid_argument,
                       std::string{"channel::"} + what + ": negative timeout"));
    auto tp = internal::deadline_after(timeout);
    if (tp == internal::steady_clock::time_point::max())
      return std::nullopt;
    return tp;
  }

  std::shared_ptr<internal::channel_core<T>> core_;
};

} // namespace weave

// The machinery behind channel<T>; not part of the API.
#include "runtime/internal/channel_core.hpp"
