#pragma once

// Internal: one child process behind a `process_actor` — the spawn, the
// threads that pump its pipes and reap it, its signals and its part in the
// runtime's shutdown.
//
// Threads: `weave-proc-wait` reaps the child (a pidfd polled, or a blocking
// `waitid`); `weave-proc-in` / `-out` / `-err` pump the piped streams. Each
// holds a reference to this state until it ends. The pumps end at end of
// file, when their channel closes, or when `stop_pumps` wakes them (an
// eventfd they all poll, plus a stop token for the channel waits).
//
// Signals are sent only while the child is not reaped, under `mtx_`, which
// the reaper also takes to reap it: a signal never reaches a process that
// reused the pid (the reaper first waits with WNOWAIT, then reaps under the
// lock).
//
// Lock: `mtx_` guards the flags, the outcome and the actor reference; no
// user code (the future's continuations, actor messages, channel closes)
// runs while it is held.

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>

#include "caf/actor.hpp"
#include "caf/weak_intrusive_ptr.hpp"

#include "actors/process_actor.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/stop_token.hpp"

namespace weave::actors::internal {

/// The message the reaper sends the process actor once the outcome is set.
using reaped_atom = caf::atom_constant<caf::atom("wv_reaped")>;

class process_state : public weave::internal::component,
                      public std::enable_shared_from_this<process_state> {
public:
  process_state(process_options opts, caf::actor owner);

  ~process_state() override;

  // -- component: waits for the child in the last phase ----------------------

  weave::internal::shutdown_phase phase() const noexcept override {
    return weave::internal::shutdown_phase::blockers;
  }

  void begin_shutdown(shutdown_report& report) override;

  void finish_shutdown(weave::internal::steady_clock::time_point deadline,
                       shutdown_report& report) override;

  /// Waits for the child until `deadline`, then sends SIGKILL; the waits
  /// for its end and its threads are `finish_shutdown`'s, so that several
  /// children die in parallel (true: that is left).
  bool settle_jobs(weave::internal::steady_clock::time_point deadline,
                   shutdown_report& report) override;

  void release_actors() noexcept override;

  // -- setup ------------------------------------------------------------------

  /// The part that sends SIGTERM in the first phase; register it too.
  weave::internal::component_ptr terminator();

  /// Spawns the child with pipes for the channels given (set before).
  /// Throws `io_error`; nothing is left behind on failure.
  void spawn();

  /// Kills the child and reaps it at once (when nothing else will).
  void abort_child() noexcept;

  /// Starts the reaper and the pumps; `actor` hears `reaped_atom`. On
  /// failure kills and reaps the child and throws `io_error`. With `async`
  /// (the caller must not block), the reaper's thread spawns the child
  /// first, and a failure to spawn becomes the outcome.
  void start_threads(caf::actor actor, bool async);

  std::optional<channel<std::string>> in, out, err;
  promise<exit_status> exit_promise;

  /// The child's pid; -1 until spawned.
  pid_t pid();

  int kill_signal() const noexcept {
    return opts_.kill_signal;
  }

  // -- control ----------------------------------------------------------------

  /// Sends `signo` (to the group with `new_process_group`); false once the
  /// child was reaped.
  bool send_signal(int signo);

  /// The outcome once reaped; none before.
  std::optional<result<exit_status>> outcome();

  /// The process actor ended (its attached functor): the shutdown waits
  /// for this after ending it.
  void actor_ended();

  /// "'prog'" for error messages.
  const std::string& quoted_program() const noexcept {
    return quoted_;
  }

private:
  class terminator_part;

  void start_pumps();
  bool spawned();
  void signal_locked(int signo);
  void reap_main();
  void read_main(int fd, channel<std::string> ch, const char* stream);
  void write_main(int fd, channel<std::string> ch);
  bool start_thread(const char* name, std::function<void()> body);
  void thread_ended();
  void stop_pumps() noexcept;
  void set_outcome(result<exit_status> r);

  const process_options opts_;
  const std::string quoted_;
  pid_t pid_ = -1;  // under `mtx_` (set once spawned)
  int pidfd_ = -1;
  int wake_fd_ = -1;
  // The parent's ends of the pipes, until their pump takes them.
  int in_fd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  stop_source stop_;
  std::shared_ptr<terminator_part> terminator_;

  std::mutex mtx_;
  std::condition_variable cv_;
  caf::actor actor_; // until reaped: the actor lives as long as the child
  // The actor for the shutdown to end (a handle of the user's may keep it
  // alive past the reaping, and an actor must not outlive its system).
  caf::weak_actor_ptr actor_weak_;
  bool actor_ended_ = false;
  // Told the exit, and kept alive until then (like a channel's subscriber).
  caf::actor owner_;
  std::optional<result<exit_status>> outcome_;
  int pending_signal_ = 0;
  bool failed_ = false;
  bool reaped_ = false;
  bool counted_ = false;
  /// When `settle_jobs` found the child alive at the deadline and sent
  /// SIGKILL: the reap grace counts from here, so the graces of a phase's
  /// children run side by side instead of one after another.
  weave::internal::steady_clock::time_point killed_at_{};
  size_t threads_started_ = 0;
  size_t threads_running_ = 0;
};

} // namespace weave::actors::internal
