#pragma once

/// weave's error codes: a `caf::error` category of its own.
///
/// Failure is a value in weave. A job that throws, a wait that times out, a
/// call after shutdown: each reaches its caller as a `caf::error` whose
/// category is `weave::error_category` and whose code is a `weave::errc`. The
/// error's context carries a human-readable message (the exception's `what()`,
/// the option name and allowed range, ...). Plain-thread APIs that cannot
/// return an error (`future<T>::get()`) throw `weave::exception`, which
/// carries the same `caf::error`.
///
/// One error per meaning: every timeout is `errc::timeout`, every call after
/// shutdown `errc::shut_down`, and so on, whichever part of weave reports
/// it. Where CAF reports the same meaning with an error of its own (an
/// offload's missed response deadline arrives from CAF as
/// `sec::request_timeout`), weave translates it before the user sees it, so
/// one check (`weave::is(err, errc::timeout)`) covers every case.
///
/// Thread-safety: everything here is a value type or a pure function.

#include <stdexcept>
#include <string>

#include "caf/atom.hpp"
#include "caf/error.hpp"
#include "caf/make_message.hpp"

namespace weave {

/// The category atom of every weave error.
constexpr caf::atom_value error_category = caf::atom("weave");

/// weave's error codes. Zero is reserved by CAF for "no error".
enum class errc : uint8_t {
  /// The job or future was cancelled before it started.
  cancelled = 1,
  /// A deadline passed before the result arrived (any weave timeout:
  /// offload, timed submit, waits, channel operations).
  timeout,
  /// The channel is closed.
  closed,
  /// The runtime, pool or loop has shut down (or is shutting down).
  shut_down,
  /// The job threw; the context holds the exception's message.
  job_failed,
  /// A caller passed a value outside its allowed range.
  invalid_argument,
  /// The configuration is invalid; the context names the option and range.
  invalid_config,
  /// The call would block a thread that must never block (a scheduler thread,
  /// an event loop's own thread) or would wait on itself.
  would_deadlock,
  /// A future's value was already taken by an earlier `get()`.
  already_retrieved,
  /// A supervised blocker failed too often and was given up.
  gave_up,
  /// Every promise of a pending future was destroyed without setting it.
  broken_promise,
  /// An I/O call failed; the context names the path and the errno text.
  io_error,
  /// A channel refused an item by its overflow policy (`fail`, or
  /// `drop_newest`, which discarded it).
  full,
  /// A worker process running (or holding) the job was lost: it crashed,
  /// was killed, froze past the connection timeout, or its connection
  /// dropped. The context's message begins with "not started" (the job
  /// certainly never ran: safe to retry) or "maybe executed"; see
  /// `weave::maybe_executed` in process_pool.hpp.
  worker_lost,
  /// The jobs registered in two processes do not match (same name,
  /// different signature, or a job unknown to the worker); the context
  /// names the job.
  registry_mismatch,
};

/// The name of an error code, e.g. "job_failed".
const char* to_string(errc code) noexcept;

/// Makes a weave error with an optional explanation in its context.
caf::error make_error(errc code);
caf::error make_error(errc code, std::string what);

/// Renders any `caf::error` readably. weave errors render as
/// "weave::job_failed: <message>"; other categories fall back to CAF's format.
std::string render(const caf::error& err);

/// True if `err` is the weave error `code` (false for no error).
bool is(const caf::error& err, errc code) noexcept;

/// The exception thrown by plain-thread APIs; `error()` is the weave error.
class exception : public std::runtime_error {
public:
  explicit exception(caf::error err);

  const caf::error& error() const noexcept {
    return error_;
  }

  /// The weave error code, or 0 if the error is from another category.
  errc code() const noexcept;

private:
  caf::error error_;
};

/// Throws `weave::exception(err)`.
[[noreturn]] void raise(caf::error err);

} // namespace weave
