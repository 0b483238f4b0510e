#pragma once

/// `stop_source`, `stop_token`, `stop_callback`: asking running work to stop.
///
/// The C++20 `std::stop_source` / `std::stop_token` / `std::stop_callback`,
/// written in C++17, plus a *cause*: the answer to Python's `task.cancel()`
/// and `asyncio.timeout()` for code that is already running. A job receives
/// a `stop_token` and looks at it (`stop_requested()`, one atomic load, no
/// allocation), or waits on it: `weave::sleep_for`, `weave::wait` on a
/// condition variable (runtime/stop_wait.hpp), `future::get(token)`,
/// `channel::put(x, token)` and `channel::get(token)` all return promptly
/// once the token is stopped, and say why (`cause()`).
///
/// Operations
/// - `stop_source`: `request_stop(cause = errc::cancelled)` requests the
///   stop; only the first request counts, and only that call returns true.
///   `get_token()`, `stop_requested()`, `stop_possible()` (false only for a
///   source made with `weave::nostopstate`), `cause()`, `error()`. Copies
///   share one state.
/// - `stop_token`: `stop_requested()`, `stop_possible()` (false when no
///   stop was requested and no source is left that could request one; a
///   default-constructed token never stops), `cause()`, `error()`.
/// - `cause()`: the `errc` given to the first `request_stop` (`cancelled`,
///   `timeout`, `shut_down`, ...), or `errc{}` (0, no error) before a stop.
///   `error()` is the same as a `caf::error`: empty before a stop, else
///   `make_error(cause, "stop requested")`. A cause of `errc{}` is refused
///   with `invalid_argument`.
/// - `stop_callback<F> cb{token, f}`: registers `f` to run once when the
///   stop is requested. If it already was, `f` runs at once, in the
///   constructor, on the registering thread; otherwise it runs on the thread
///   that calls `request_stop` (the first one), inside that call. The
///   destructor deregisters `f`: it does not run afterwards. If `f` is
///   running on another thread at that moment, the destructor waits until it
///   returned; if `f` runs on the destroying thread itself (`f` destroys its
///   own `stop_callback`), the destructor returns at once (no deadlock), and
///   `f` must not touch its own captures after that. `f` must not throw:
///   it is called from a `noexcept` context, so an exception ends the
///   program (`std::terminate`, as in C++20).
///
/// Thread-safety: every member of `stop_source` and `stop_token` may be
/// called from any thread, on shared or separate copies. A stop request
/// happens-before `stop_requested()` returns true and before every
/// callback runs. Callbacks run one at a time, in no promised order, and
/// never while weave holds one of its locks: the registry's lock is
/// released before each callback is called, so a callback may register or
/// deregister callbacks, request the stop again (false), or wait. A
/// `stop_callback` object itself belongs to one thread (construct and
/// destroy it on the same thread, or synchronise).
///
/// Shutdown: a stop state is a plain reference-counted object, owned by its
/// sources, tokens and registered callbacks; nothing in it belongs to the
/// runtime, so it may outlive the runtime, and it starts no thread. Code
/// that stops running work because of a shutdown requests the stop with
/// cause `shut_down`, so the work can tell a shutdown from a plain cancel.

#include <type_traits>
#include <utility>

#include "caf/error.hpp"
#include "caf/make_counted.hpp"

#include "runtime/error.hpp"
#include "runtime/internal/stop_hook.hpp"
#include "runtime/internal/stop_state.hpp"

namespace weave {

class stop_token;

namespace internal {

/// The state behind `tok` (null for a token without one).
stop_state* state_of(const stop_token& tok) noexcept;

/// A token of `st`, for a state that is not a `stop_source`'s (a job's
/// embedded one).
stop_token make_stop_token(stop_state* st) noexcept;

/// `make_error(cause, what)`; empty for `errc{}`.
caf::error stop_error(errc cause, const char* what);

} // namespace internal

/// Tag for a `stop_source` without a state (it can never stop).
struct nostopstate_t {
  explicit nostopstate_t() = default;
};

/// Makes an empty `stop_source`: `stop_source src{weave::nostopstate};`.
inline constexpr nostopstate_t nostopstate{};

/// The receiving side: tells running work whether, and why, to stop.
class stop_token {
public:
  /// A token that never stops (`stop_possible()` is false).
  stop_token() noexcept = default;

  bool stop_requested() const noexcept {
    return state_ && state_->stop_requested();
  }

  /// False if no stop was requested and none can be anymore (no state, or
  /// every source is gone).
  bool stop_possible() const noexcept {
    return state_ && state_->stop_possible();
  }

  /// The cause of the stop, `errc{}` before one was requested.
  errc cause() const noexcept {
    return state_ ? state_->cause() : errc{};
  }

  /// The cause as an error: empty before a stop.
  caf::error error() const;

  void swap(stop_token& other) noexcept {
    state_.swap(other.state_);
  }

  /// True if both have the same state, or neither has one.
  friend bool operator==(const stop_token& x, const stop_token& y) noexcept {
    return x.state_ == y.state_;
  }

  friend bool operator!=(const stop_token& x, const stop_token& y) noexcept {
    return !(x == y);
  }

private:
  friend class stop_source;
  friend internal::stop_state* internal::state_of(const stop_token&) noexcept;
  friend stop_token internal::make_stop_token(internal::stop_state*) noexcept;

  explicit stop_token(internal::stop_state_ptr st) noexcept
    : state_(std::move(st)) {
  }

  internal::stop_state_ptr state_;
};

/// The requesting side; copies share one state.
class stop_source {
public:
  /// A source with a fresh state (allocates).
  stop_source();

  /// A source without a state: it never stops, its tokens neither.
  explicit stop_source(nostopstate_t) noexcept {
  }

  stop_source(const stop_source& other) noexcept;
  stop_source(stop_source&& other) noexcept = default;
  stop_source& operator=(const stop_source& other) noexcept;
  stop_source& operator=(stop_source&& other) noexcept;
  ~stop_source();

  /// Requests the stop with `cause` and runs the registered callbacks on
  /// this thread before returning. True only for the call that made the
  /// request (false for later ones and for a source without a state).
  /// Throws `invalid_argument` for `errc{}`.
  bool request_stop(errc cause = errc::cancelled);

  bool stop_requested() const noexcept {
    return state_ && state_->stop_requested();
  }

  /// True if the source has a state (it can stop, or it did).
  bool stop_possible() const noexcept {
    return state_ != nullptr;
  }

  /// The cause of the stop, `errc{}` before one was requested.
  errc cause() const noexcept {
    return state_ ? state_->cause() : errc{};
  }

  /// The cause as an error: empty before a stop.
  caf::error error() const;

  stop_token get_token() const noexcept {
    return stop_token{state_};
  }

  void swap(stop_source& other) noexcept {
    state_.swap(other.state_);
  }

  friend bool operator==(const stop_source& x, const stop_source& y) noexcept {
    return x.state_ == y.state_;
  }

  friend bool operator!=(const stop_source& x, const stop_source& y) noexcept {
    return !(x == y);
  }

private:
  internal::stop_state_ptr state_;
};

/// Runs a callable once when a token is stopped; see the header comment.
template <class Callback>
class stop_callback {
public:
  using callback_type = Callback;

  static_assert(std::is_invocable<Callback&>::value,
                "stop_callback: the callback must be callable without "
                "arguments");

  template <class C, class = std::enable_if_t<
                       std::is_constructible<Callback, C>::value>>
  explicit stop_callback(const stop_token& tok, C&& cb) noexcept(
    std::is_nothrow_constructible<Callback, C>::value)
    : hook_(std::forward<C>(cb)) {
    hook_.attach(internal::state_of(tok));
  }

  stop_callback(const stop_callback&) = delete;
  stop_callback(stop_callback&&) = delete;
  stop_callback& operator=(const stop_callback&) = delete;
  stop_callback& operator=(stop_callback&&) = delete;

  /// Deregisters; waits if the callback runs on another thread now.
  ~stop_callback() = default;

private:
  internal::stop_hook<Callback> hook_;
};

template <class Callback>
stop_callback(stop_token, Callback) -> stop_callback<Callback>;

namespace internal {

inline stop_state* state_of(const stop_token& tok) noexcept {
  return tok.state_.get();
}

inline stop_token make_stop_token(stop_state* st) noexcept {
  return stop_token{stop_state_ptr{st}};
}

} // namespace internal

} // namespace weave
