#pragma once

/// `remote_pool`: registered jobs run by worker processes on other hosts,
/// through the same `submit` / `offload` as a thread pool or a process pool.
///
/// Setup:
///
///     // on each worker host: a program whose main starts with
///     //   WEAVE_PROCESS_WORKER_MAIN(argc, argv);
///     // started as   prog --weave-worker-listen=0.0.0.0:7001
///     //              [--weave-worker-threads=4] [--weave-worker-capacity=16]
///     //              [--weave-app-id=ID] [TLS flags, see remote_worker.hpp]
///     // (or, in a program of your own, a `weave::job_server`).
///
///     // the client
///     weave::runtime_config cfg;
///     weave::enable_remote_pools(cfg, "my-app");  // middleman, heartbeat, id
///     weave::runtime rt{std::move(cfg)};
///     weave::remote_pool pool{rt, {{"hostA:7001", "hostB:7002"}}};
///     auto n = pool.submit(count_words("a.txt")).get();
///
/// Main operations (exactly as `process_pool`'s):
/// - `submit(job(args...))`, `submit(job(args...), timeout)`,
///   `submit(job, args...)`: from any thread → `future<R>`.
/// - `offload(self, pool, job(args...))` / `offload(..., timeout)` inside an
///   actor (offload.hpp).
/// - `stats()`, `nodes()` (each worker's address, state, last error),
///   `shutdown(deadline)`.
///
/// Connecting: the pool's own actor `<name>-io` (a detached actor with a
/// thread of its own, never a scheduler thread) asks CAF's middleman actor
/// to connect to each worker (`connect_atom` request with a deadline of
/// `connect_timeout`; never the blocking `remote_actor`), then asks the
/// worker for its job table and capacity (`hello`). The constructor returns
/// when every worker joined or failed its first attempt (at most
/// `start_timeout`), and works with those that joined, reporting the
/// others in `nodes()`; if none joined, it goes on trying until one does
/// and throws if none did within `start_timeout`. A worker that is down
/// (at start or later) is tried again with back-off, from
/// `reconnect_min` doubling up to `reconnect_max`.
///
/// Credit: a worker never holds more than its capacity (the smaller of
/// what it announces and `remote_pool_options::capacity`, if set) of this
/// pool's jobs; the rest wait here, first in first out, and the next goes to
/// the worker holding the fewest when one returns a result. A worker asks
/// ("claim") before starting a job, so the pool knows which jobs may have
/// started. Capacity is per client: two pools sharing a worker may each
/// fill it.
///
/// Failures (as `process_pool`'s): a job that throws → `job_failed`. A
/// worker that dies, is killed, whose host or connection goes down, or
/// that freezes (no heartbeat within `middleman.connection-timeout`, see
/// `enable_process_pools`) is lost when CAF reports its actor DOWN: every
/// job it held is answered at once with `worker_lost`, marked "not started"
/// (safe to retry) or "maybe executed" (`maybe_executed(err)`); an
/// idempotent job is retried once, first in the queue, on another worker,
/// and its caller sees one outcome. The pool then reconnects with back-off.
/// Timeouts and `cancel()` as `process_pool`'s: a job no worker started
/// never runs.
///
/// Security: both ends must share the application id set by
/// `enable_remote_pools` (CAF's `middleman.app-identifiers`); otherwise the
/// connection is refused and `nodes()` names our id. With
/// `enable_remote_tls` (remote_tls.hpp) every connection uses TLS.
///
/// Shutdown (`shutdown(d)`, the destructor with the runtime's
/// `weave.shutdown-deadline`, or the runtime's shutdown): new jobs fail
/// with `shut_down`; queued jobs are answered `shut_down` (cancelled); jobs
/// the workers hold may finish until the deadline, the rest are answered
/// `shut_down` (abandoned, or cancelled if not started); the pool's actor
/// ends, and the workers drop what they still hold of this pool's. Remote
/// worker processes are not stopped: they belong to their hosts.
///
/// Errors: bad options (no workers, a malformed "host:port", port 0 or
/// above 65535, a negative duration), no middleman: `invalid_argument`; no
/// worker reachable at start: `io_error` naming each address and why;
/// made on a thread that must never block: `would_deadlock`. Thrown by the
/// constructor as `weave::exception`.
///
/// Thread-safety: every member may be called from any thread. The pool's
/// lock is never held while user code runs: future continuations run on
/// the pool's actor thread, or on the thread that shuts the pool down.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "caf/timespan.hpp"

#include "runtime/future.hpp"
#include "runtime/internal/remote_submit.hpp"
#include "runtime/offload.hpp"
#include "runtime/process_pool.hpp"
#include "runtime/registered_job.hpp"
#include "runtime/runtime.hpp"
#include "runtime/runtime_config.hpp"
#include "runtime/shutdown_report.hpp"

namespace weave {

namespace internal {
class remote_pool_impl;
} // namespace internal

/// The application id weave sets unless told another.
constexpr const char* default_app_id = "weave";

/// Loads CAF's middleman with heartbeats (`enable_process_pools`) and sets
/// the application id both ends of a connection must share
/// (`middleman.app-identifiers`). Call once, before the runtime is made;
/// an empty id is `invalid_argument`.
void enable_remote_pools(runtime_config& cfg,
                         const std::string& app_id = default_app_id);

struct remote_pool_options {
  /// The workers, each "host:port" ("[v6addr]:port" too).
  std::vector<std::string> workers;
  /// Names the pool's actor thread (`<name>-io`).
  std::string name = "remotepool";
  /// Jobs one worker holds at once; 0: what the worker announces (at most
  /// that in any case).
  size_t capacity = 0;
  /// One connection attempt (connect and hello) at most this long.
  caf::timespan connect_timeout = std::chrono::seconds{5};
  /// How long the constructor waits for a first worker at most.
  caf::timespan start_timeout = std::chrono::seconds{10};
  /// Back-off between attempts to reach a worker that is down.
  caf::timespan reconnect_min = std::chrono::milliseconds{100};
  caf::timespan reconnect_max = std::chrono::seconds{5};
};

class remote_pool {
public:
  using stats_type = process_pool::stats_type;

  /// One worker as the pool sees it.
  struct node_info {
    /// "host:port" as given.
    std::string address;
    /// Connected now.
    bool connected = false;
    /// Its process id (0 before it first joined).
    int32_t pid = 0;
    /// Jobs it holds, and its capacity here.
    size_t held = 0;
    size_t capacity = 0;
    /// Jobs it returned (a value or an error).
    size_t completed = 0;
    /// Times it was lost, and failed attempts to reach it.
    size_t losses = 0;
    size_t failed_attempts = 0;
    /// Why it was last lost or unreachable ("" if never).
    std::string last_error;
  };

  static constexpr size_t max_workers = 1024;

  remote_pool(runtime& rt, remote_pool_options opts);

  /// Shuts the pool down with the runtime's configured deadline.
  ~remote_pool();

  remote_pool(const remote_pool&) = delete;
  remote_pool& operator=(const remote_pool&) = delete;

  template <class Sig>
  auto submit(bound_job<Sig> call) {
    return internal::remote_submit(*this, std::move(call), std::nullopt,
                                   "remote_pool");
  }

  /// A negative `timeout` completes the future at once with
  /// `invalid_argument`; a huge one means none.
  template <class Sig, class Rep, class Period>
  auto submit(bound_job<Sig> call, std::chrono::duration<Rep, Period> timeout) {
    return internal::remote_submit(*this, std::move(call),
                                   internal::make_offload_timeout(timeout),
                                   "remote_pool");
  }

  template <class Sig, class... Xs>
  auto submit(const registered_job<Sig>& job, Xs&&... xs) {
    return submit(job(std::forward<Xs>(xs)...));
  }

  stats_type stats() const;

  /// Every worker, in the order of `remote_pool_options::workers`.
  std::vector<node_info> nodes() const;

  const std::string& name() const noexcept;

  /// The number of workers configured (connected or not).
  size_t size() const noexcept;

  /// See the header comment. Idempotent; a negative deadline is
  /// `invalid_argument`.
  shutdown_report shutdown(caf::timespan deadline);

private:
  friend struct internal::remote_enqueue<remote_pool>;

  void enqueue(internal::remote_call_ptr c, caf::timespan timeout);

  std::shared_ptr<internal::remote_pool_impl> impl_;
  caf::timespan shutdown_deadline_;
};

namespace internal {

template <>
struct remote_enqueue<remote_pool> {
  static void enqueue(remote_pool& pool, remote_call_ptr c,
                      caf::timespan timeout) {
    pool.enqueue(std::move(c), timeout);
  }
};

} // namespace internal

/// Runs a registered job on a remote pool from inside an actor; the
/// outcome arrives like any offload's (offload.hpp).
template <class Self, class Sig>
auto offload(Self* self, remote_pool& pool, bound_job<Sig> call) {
  return internal::remote_offload(self, pool, std::move(call),
                                  internal::offload_timeout{});
}

/// With a timeout (`weave::errc::timeout`).
template <class Self, class Sig, class Rep, class Period>
auto offload(Self* self, remote_pool& pool, bound_job<Sig> call,
             std::chrono::duration<Rep, Period> timeout) {
  return internal::remote_offload(self, pool, std::move(call),
                                  internal::make_offload_timeout(timeout));
}

} // namespace weave
