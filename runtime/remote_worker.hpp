#pragma once

/// `job_server`: this process serves its registered jobs to remote pools
/// on other hosts (the worker side of `remote_pool`).
///
/// Two ways to run one:
/// - a program whose main starts with `WEAVE_PROCESS_WORKER_MAIN(argc,
///   argv)` (process_pool.hpp), started as
///   `prog --weave-worker-listen=HOST:PORT [--weave-worker-threads=N]
///   [--weave-worker-capacity=N] [--weave-app-id=ID] [TLS flags:
///   remote_tls.hpp]`. Port 0 picks a free port. Once it listens it prints
///   one line on stdout, `weave worker listening on HOST:PORT pid PID`, and
///   serves until SIGTERM or SIGINT (then exits at once, status 0). Bad
///   flags: a message on stderr and exit status 2.
/// - in a program of one's own, after `enable_remote_pools(cfg, id)`:
///   `weave::job_server server{rt, {"0.0.0.0", 7001}};`
///
/// What it does: publishes one worker actor with CAF's middleman (TLS if
/// the runtime was made with `enable_remote_tls`). Each remote pool that
/// connects says `hello` and gets this process's job table, pid and
/// capacity; the server then runs the jobs that pool sends on `threads`
/// threads of its own, asking the pool before it starts each one (one
/// claim ahead per thread), and sends back results and errors. When a pool
/// goes away (its actor DOWN: shut down, lost connection), the jobs of that
/// pool not yet started are dropped; those running finish, their results
/// discarded.
///
/// Thread-safety: `port()` from any thread; `stop()` and the destructor
/// from one thread, not a thread that must never block.
/// Shutdown: `stop()` (or the destructor, or the runtime's shutdown)
/// unpublishes the port and ends the worker actor; running jobs finish on
/// the server's thread pool, which is shut down with the runtime's
/// `weave.shutdown-deadline`.
/// Errors (constructor, as `weave::exception`): `invalid_argument` for bad
/// options or no middleman; `io_error` if it cannot listen (naming the
/// address and CAF's reason); `would_deadlock` on a thread that must never
/// block.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/runtime.hpp"

namespace weave {

struct job_server_options {
  /// The address to listen on ("0.0.0.0": every interface).
  std::string host = "127.0.0.1";
  /// 0: any free port (see `job_server::port()`).
  uint16_t port = 0;
  /// Jobs run at once.
  size_t threads = 1;
  /// Jobs one pool may hand this server at once (announced to each pool);
  /// at least `threads`.
  size_t capacity = 16;
  /// Names the server's threads.
  std::string name = "jobserver";
};

class job_server {
public:
  job_server(runtime& rt, job_server_options opts);

  ~job_server();

  job_server(const job_server&) = delete;
  job_server& operator=(const job_server&) = delete;

  /// The port it listens on.
  uint16_t port() const noexcept;

  /// Unpublishes and ends the worker actor; idempotent.
  void stop();

  struct state;

private:
  std::unique_ptr<state> state_;
};

namespace internal {

/// True if `argv` asks for a listening worker (`--weave-worker-listen=`).
bool is_listening_worker(int argc, char** argv) noexcept;

/// The main of a listening worker (see the header comment).
int run_listening_worker(int argc, char** argv);

} // namespace internal

} // namespace weave
