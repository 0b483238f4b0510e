#pragma once

/// `signal_actor`: POSIX signals as messages, the C++ answer to asyncio's
/// `loop.add_signal_handler`. Messages: `(subscribe_atom, actor)` and
/// `(unsubscribe_atom, actor)` add and remove a subscriber (monitored:
/// removed when it ends); every subscriber receives `(signal_atom, int
/// signo)` for each signal caught, in the order they were caught;
/// `(signal_atom, signo)` sent to the actor itself is forwarded the same way.
/// Thread-safety: an actor, send it messages from anywhere; at most one is
/// installed in a process at a time (signal dispositions are per process).
/// Shutdown: the actor lives until the runtime's shutdown whether or not its
/// spawner keeps a handle (send it an exit message to uninstall earlier);
/// the shutdown (in its first phase) or the actor's end puts the previous
/// dispositions back and stops its thread. Errors:
/// `spawn_signal_actor` throws `weave::exception` with `invalid_argument`
/// for a signal it does not handle or when one is installed already, with
/// `io_error` (call and errno text) if the pipe, the thread or `sigaction`
/// fails, and `shut_down` once shutdown has begun.
///
///     auto signals = weave::actors::spawn_signal_actor(rt);
///     self->send(signals, subscribe_atom::value, self);
///     ... [=](signal_atom, int signo) { if (signo == SIGHUP) reload(); }
///
/// Default actions (see `signal_options`), run on the actor's own thread
/// (`weave-signals`), never on a scheduler thread:
/// - SIGINT, SIGTERM: the runtime's phased shutdown starts
///   (`runtime::shutdown()`), and its report is printed once it returned
///   (once: a report with problems, which the runtime writes to stderr
///   itself, goes to `print` only when `print` is set); then
///   `on_shutdown` is called. Subscribers are told first.
/// - SIGUSR1: `runtime::dump()` is printed (stderr by default).
///
/// How signals are caught: a process-wide handler (`sigaction`, with
/// `SA_RESTART`) that does one thing, async-signal-safe: it writes the
/// signal's number to a pipe. The actor's thread reads the pipe and does
/// the rest; no weave or user code ever runs inside the handler. This works
/// in a multi-threaded process whatever each thread's signal mask is: the
/// kernel runs the handler on any thread that does not block the signal.
/// `signalfd` would instead need the signals blocked in every thread, also
/// in the threads started before the actor (CAF's scheduler, which the
/// runtime starts first) and in any thread a library starts later with its
/// own mask; one thread that does not block it would get the default
/// action (for SIGTERM: the process dies). Two consequences: a thread that
/// takes a signal sees `EINTR` from calls the kernel does not restart
/// (`poll`, `epoll_wait`, `nanosleep`, ...), as with any handler; and a
/// signal blocked in every thread (a program that uses `sigwait` itself)
/// never reaches this actor. The actor's own thread blocks every signal.
/// After uninstalling (shutdown, or the actor's end) a signal has its
/// previous disposition again: a second Ctrl-C during a shutdown that the
/// first one started kills the process, as it would without weave.

#include <csignal>
#include <functional>
#include <string>
#include <vector>

#include "caf/actor.hpp"
#include "caf/atom.hpp"
#include "caf/replies_to.hpp"
#include "caf/typed_actor.hpp"

#include "runtime/runtime.hpp"
#include "runtime/shutdown_report.hpp"

namespace weave::actors {

using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
using unsubscribe_atom = caf::atom_constant<caf::atom("unsubscrib")>;
using signal_atom = caf::atom_constant<caf::atom("signal")>;

using signal_actor = caf::typed_actor<
  caf::reacts_to<subscribe_atom, caf::actor>,
  caf::reacts_to<unsubscribe_atom, caf::actor>,
  caf::reacts_to<signal_atom, int>>;

/// What the signal actor catches and does by default.
struct signal_options {
  /// The signals caught: any of SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2,
  /// SIGQUIT, SIGWINCH.
  std::vector<int> signals{SIGINT, SIGTERM, SIGHUP, SIGUSR1};
  /// SIGINT and SIGTERM start the runtime's shutdown and print its report.
  bool shutdown_on_terminate = true;
  /// SIGUSR1 prints `runtime::dump()`.
  bool dump_on_usr1 = true;
  /// Where the dump, the shutdown notice and its report go, one text at a
  /// time (no trailing newline); null: one line each on stderr. Runs on the
  /// actor's thread.
  std::function<void(const std::string&)> print;
  /// Called on the actor's thread after the shutdown a signal started has
  /// returned, with the signal and the report (e.g. to let `main` return).
  /// The runtime must not be used from it: it is shut down.
  std::function<void(int signo, const shutdown_report&)> on_shutdown;
};

/// Installs the handlers and spawns the actor; see the header comment.
signal_actor spawn_signal_actor(runtime& rt, signal_options opts = {});

/// The signal's name ("SIGTERM"), or "signal N".
std::string signal_name(int signo);

} // namespace weave::actors
