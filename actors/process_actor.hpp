#pragma once

/// `process_actor`: a child process with its stdin, stdout and stderr as
/// weave channels, the C++ answer to asyncio's `create_subprocess_exec` and
/// `tokio::process`. Messages: `(wait_atom)` → `exit_status` once the child
/// has exited (at once if it has); `(kill_atom, int signo)` → `bool`, true
/// if the signal was sent, false if the child had already been reaped. The
/// owner (if any) receives `(exited_atom, exit_status)` when the child has
/// been reaped, and so does the `exited` future of `process`; if the child
/// could not be started or reaped, they get the error instead (the owner as
/// `(exited_atom, caf::error)`).
/// Thread-safety: an actor, send it messages from anywhere; the channels
/// and the future of `process` may be used from any thread (channel.hpp,
/// future.hpp). Shutdown: the runtime's shutdown sends every child SIGTERM
/// in its first phase, waits for it until the deadline, then sends SIGKILL
/// and waits at most `reap_grace` more for the kernel to end it; the
/// statuses are reported as usual (a child that SIGTERM ended reports
/// "killed by SIGTERM"); the I/O threads are stopped and counted in the
/// report (joined, or abandoned if one could not be stopped in time).
/// Errors: `spawn_process` throws `weave::exception` with
/// `invalid_argument` for bad options, with `io_error` naming the call, the
/// program and the errno text ("posix_spawn 'nope': No such file or
/// directory"), and `shut_down` once shutdown has begun; `kill` with an
/// invalid signal number answers `invalid_argument`. Called on a thread
/// that must never block (inside an actor), `spawn_process` does not wait
/// for the spawn (a vfork that lasts until exec): it runs on the child's
/// `weave-proc-wait` thread, `process::pid` is -1 (the pid is in the
/// `exit_status`), and an `io_error` from posix_spawn arrives as the
/// outcome (the `exited` future, `wait`, the owner's message) with the
/// output channels closed with it.
///
///     weave::actors::process_options opts;
///     opts.argv = {"sort"};
///     auto p = weave::actors::spawn_process(rt, opts);
///     p.in->put("b\na\n");
///     p.in->close();                      // EOF for the child
///     while (auto chunk = p.out->get())   // "a\nb\n", then `closed` at EOF
///       std::cout << *chunk;
///     auto status = p.exited.get();       // status.code == 0
///
/// Streams. Each of stdin, stdout and stderr is a pipe to a bounded channel
/// of `std::string` chunks (`stdio_mode::pipe`, the default), the parent's
/// own (`inherit`) or /dev/null (`null`). Each piped stream has a thread of
/// its own (`weave-proc-in`, `-out`, `-err`) plus one that waits for the
/// child (`weave-proc-wait`), so no stream ever waits for another:
/// - stdout and stderr: a thread reads the pipe (at most `chunk_size` bytes
///   at a time) and puts each chunk into the stream's channel. A full
///   channel with overflow `block` (the default) stops the reading of that
///   pipe only, until a consumer takes a chunk: the child then blocks when
///   it writes more to that one stream (once the pipe's own buffer is
///   full), as it would with an unread pipe in a shell, while the other
///   stream keeps flowing. A stream nobody reads can be set to
///   `overflow::drop_oldest` (it keeps the newest `capacity` chunks, the
///   child never blocks on it) or to `stdio_mode::null`. Memory per stream
///   is bounded by `capacity` × `chunk_size`. The channel closes after the
///   last chunk (end of file: the child and every process that inherited
///   the pipe closed it); closing it from the consumer's side stops the
///   reading and closes the pipe (the child then gets EPIPE or SIGPIPE).
/// - stdin: a thread takes chunks from the channel and writes them to the
///   pipe. Closing the channel closes the pipe once the queued chunks are
///   written (the child sees end of file). If the child closes its end, the
///   channel is closed with an `io_error` ("write stdin 'cat': Broken
///   pipe"); once the child has exited it is closed too.
///
/// Killing. `kill` sends any signal. The child is sent `kill_signal`
/// (SIGKILL by default) when the owner actor ends or when the process actor
/// itself is killed (an exit message). The spawn is atomic with the
/// runtime's shutdown: a child is either refused (`shut_down`) or
/// terminated by it. Every child is reaped (by `weave-proc-wait`, with a
/// pidfd where the kernel has `pidfd_open`, else with a blocking `waitid`),
/// and signals are never sent to a reaped pid: no zombies, and no signal
/// to a process that reused the pid. Do not reap weave's children yourself
/// (`waitpid(-1)`, or SIGCHLD set to SIG_IGN): the process actor then
/// reports an `io_error` from `waitid` instead of the status.
///
/// If the parent process itself is SIGKILLed, nothing in it runs: its
/// children live on, adopted by init (or the nearest subreaper), which
/// reaps them when they end; their pipes to the dead parent close, so a
/// child reading stdin sees end of file and one writing gets EPIPE/SIGPIPE,
/// which ends most filters; a child that does neither runs on. (posix_spawn
/// has no `PR_SET_PDEATHSIG`.) Use `new_process_group` and kill the group
/// from a supervisor, or a cgroup (systemd's `KillMode`), where that matters.

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "caf/actor.hpp"
#include "caf/atom.hpp"
#include "caf/fwd.hpp"
#include "caf/meta/type_name.hpp"
#include "caf/replies_to.hpp"
#include "caf/typed_actor.hpp"

#include "runtime/channel.hpp"
#include "runtime/future.hpp"
#include "runtime/runtime.hpp"

namespace weave::actors {

using wait_atom = caf::atom_constant<caf::atom("wait")>;
using kill_atom = caf::atom_constant<caf::atom("kill")>;
using exited_atom = caf::atom_constant<caf::atom("exited")>;

/// How the child gets a standard stream.
enum class stdio_mode {
  /// A pipe to a channel of `process`.
  pipe,
  /// The parent's own stream.
  inherit,
  /// /dev/null.
  null,
};

/// How a child ended.
struct exit_status {
  /// The child's process id.
  int32_t pid = 0;
  /// Its exit code, or -1 if a signal ended it.
  int32_t code = -1;
  /// The signal that ended it, or 0 if it exited.
  int32_t signal = 0;

  /// True if it exited with code 0.
  bool success() const noexcept {
    return signal == 0 && code == 0;
  }

  /// "exit code 3" or "killed by SIGKILL".
  std::string to_string() const;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, exit_status& x) {
  return f(caf::meta::type_name("exit_status"), x.pid, x.code, x.signal);
}

using process_actor = caf::typed_actor<
  caf::replies_to<wait_atom>::with<exit_status>,
  caf::replies_to<kill_atom, int>::with<bool>>;

/// What to run and how; see the header comment.
struct process_options {
  /// The program and its arguments (at least the program). A program
  /// without a '/' is looked up in the parent's PATH.
  std::vector<std::string> argv;
  /// The child's environment ("NAME=value" each); none: the parent's.
  std::optional<std::vector<std::string>> env;
  /// The child's working directory; empty: the parent's.
  std::string cwd;
  stdio_mode stdin_mode = stdio_mode::pipe;
  stdio_mode stdout_mode = stdio_mode::pipe;
  stdio_mode stderr_mode = stdio_mode::pipe;
  /// Chunks each stream's channel holds (at least 1).
  size_t capacity = 16;
  /// Bytes read from stdout or stderr at once, at most (at least 1).
  size_t chunk_size = 64 * 1024;
  /// What a full stdout or stderr channel does: `block` stops reading that
  /// pipe; `drop_oldest` keeps the newest chunks; `drop_newest` the oldest.
  /// (`fail` is refused.)
  overflow stdout_overflow = overflow::block;
  overflow stderr_overflow = overflow::block;
  /// Sent when the owner ends or the process actor is killed.
  int kill_signal = SIGKILL;
  /// Starts the child in a process group of its own; every signal (kill,
  /// owner's end, shutdown) then goes to the whole group.
  bool new_process_group = false;
};

/// A running child: its actor, pid, streams and exit.
struct process {
  process_actor actor;
  /// The child's pid; -1 when spawned from an actor (see above).
  int pid = -1;
  /// The piped streams (empty for `inherit` and `null`).
  std::optional<channel<std::string>> in;
  std::optional<channel<std::string>> out;
  std::optional<channel<std::string>> err;
  /// Completes with the status once the child has been reaped (or fails
  /// with `io_error` if it was reaped by someone else).
  future<exit_status> exited;
};

/// How long shutdown waits for a child after SIGKILL at its deadline
/// (within `runtime::shutdown_margin`).
constexpr auto reap_grace = std::chrono::milliseconds{100};

/// Starts the child, without an owner; see the header comment.
process spawn_process(runtime& rt, process_options opts);

/// Starts the child owned by `owner`: monitored (its end kills the child)
/// and told `(exited_atom, exit_status)`. The owner is referenced until it
/// has been told (as a channel references its subscriber): an actor that
/// nothing else references stays alive to hear its child's exit.
process spawn_process(runtime& rt, const caf::actor& owner,
                      process_options opts);

/// Starts the child owned by `self` (an actor of `rt`'s system).
process spawn_process(caf::local_actor* self, process_options opts);

} // namespace weave::actors
