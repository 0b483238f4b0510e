#include "actors/process_actor.hpp"

#include <csignal>
#include <cstring>
#include <memory>
#include <vector>

#include "caf/actor_cast.hpp"
#include "caf/actor_system.hpp"
#include "caf/local_actor.hpp"
#include "caf/send.hpp"
#include "caf/spawn_options.hpp"
#include "caf/typed_event_based_actor.hpp"

#include "actors/internal/process_state.hpp"
#include "runtime/error.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/this_thread.hpp"

namespace weave::actors {

namespace {

using internal::process_state;
using internal::reaped_atom;

struct waiting_state {
  std::vector<caf::typed_response_promise<exit_status>> waiting;
  caf::actor_addr owner;
  std::shared_ptr<process_state> st;
  static inline const char* name = "weave.process";

  /// Answers the waits still pending as the actor ends (an exit message,
  /// even `exit_reason::kill`, which skips every handler): with the
  /// outcome if the child was reaped, else `closed`.
  ~waiting_state() {
    if (waiting.empty())
      return;
    auto out = st->outcome();
    for (auto& rp : waiting) {
      if (out && *out)
        rp.deliver(**out);
      else if (out)
        rp.deliver(out->error());
      else
        rp.deliver(make_error(errc::closed,
                              "wait for " + st->quoted_program()
                                + ": the process actor ended before the "
                                  "child exited (the child is killed)"));
    }
  }
};

using self_pointer = process_actor::stateful_pointer<waiting_state>;

process_actor::behavior_type process_behavior(self_pointer self,
                                              std::shared_ptr<process_state> st,
                                              caf::actor owner) {
  self->state.st = st;
  if (owner) {
    self->state.owner = owner.address();
    self->monitor(owner); // a dead owner: the down message comes at once
  }
  self->set_down_handler([self, st](caf::down_msg& dm) {
    if (dm.source == self->state.owner)
      st->send_signal(st->kill_signal());
  });
  // Killed (an exit message) or ended for any reason: so is the child
  // (a no-op once it was reaped).
  self->attach_functor([st](const caf::error&) {
    st->send_signal(st->kill_signal());
    st->actor_ended();
  });
  self->set_default_handler(
    [self, st](caf::scheduled_actor*,
               caf::message_view& x) -> caf::result<caf::message> {
      if (!x.content().match_elements<reaped_atom>())
        return caf::sec::unexpected_message;
      auto out = st->outcome();
      auto waiting = std::move(self->state.waiting);
      self->state.waiting.clear();
      for (auto& rp : waiting) {
        if (*out)
          rp.deliver(**out);
        else
          rp.deliver(out->error());
      }
      return caf::message{};
    });
  return {
    [self, st](wait_atom) -> caf::result<exit_status> {
      if (auto out = st->outcome()) {
        if (*out)
          return **out;
        return out->error();
      }
      auto rp = self->make_response_promise<exit_status>();
      self->state.waiting.push_back(rp);
      return rp;
    },
    [st](kill_atom, int signo) -> caf::result<bool> {
      if (signo <= 0 || signo >= NSIG)
        return make_error(errc::invalid_argument,
                          "process_actor kill: " + std::to_string(signo)
                            + " is not a signal number (1.."
                            + std::to_string(NSIG - 1) + ")");
      return st->send_signal(signo);
    },
  };
}

void check(bool ok, const std::string& what) {
  if (!ok)
    raise(make_error(errc::invalid_argument, "spawn_process: " + what));
}

void validate(const process_options& opts) {
  check(!opts.argv.empty() && !opts.argv.front().empty(),
        "argv must name a program");
  auto no_nul = [](const std::string& s) {
    return s.find('\0') == std::string::npos;
  };
  for (auto& a : opts.argv)
    check(no_nul(a), "an argument contains a NUL byte");
  if (opts.env)
    for (auto& e : *opts.env)
      check(no_nul(e) && e.find('=') != std::string::npos
              && e.front() != '=',
            "env entries must read NAME=value (got '" + e + "')");
  check(no_nul(opts.cwd), "cwd contains a NUL byte");
  check(opts.capacity > 0, "capacity must be at least 1");
  check(opts.chunk_size > 0, "chunk_size must be at least 1");
  check(opts.stdout_overflow != overflow::fail
          && opts.stderr_overflow != overflow::fail,
        "overflow::fail is not a policy for a child's output (use block, "
        "drop_oldest or drop_newest)");
  check(opts.kill_signal > 0 && opts.kill_signal < NSIG,
        "kill_signal " + std::to_string(opts.kill_signal)
          + " is not a signal number");
}

} // namespace

std::string exit_status::to_string() const {
  if (signal == 0)
    return "exit code " + std::to_string(code);
  if (auto abbrev = sigabbrev_np(signal))
    return std::string{"killed by SIG"} + abbrev;
  return "killed by signal " + std::to_string(signal);
}

process spawn_process(runtime& rt, const caf::actor& owner,
                      process_options opts) {
  validate(opts);
  auto st = std::make_shared<process_state>(opts, owner);
  auto name = opts.argv.front();
  auto make = [&](stdio_mode mode, const char* stream, overflow policy) {
    std::optional<channel<std::string>> ch;
    if (mode == stdio_mode::pipe)
      ch.emplace(rt, name + " " + stream, opts.capacity, policy);
    return ch;
  };
  st->in = make(opts.stdin_mode, "stdin", overflow::block);
  st->out = make(opts.stdout_mode, "stdout", opts.stdout_overflow);
  st->err = make(opts.stderr_mode, "stderr", opts.stderr_overflow);
  process result;
  result.exited = st->exit_promise.get_future();
  result.in = st->in;
  result.out = st->out;
  result.err = st->err;
  // SIGTERM in the first phase; the wait for the child in the last. The
  // child's actor and threads start under the registry's lock: either
  // shutdown stops them or they are refused (`shut_down`).
  using weave::internal::runtime_access;
  runtime_access::register_component(rt, st->terminator());
  // On a thread that must never block (an actor's), the spawn itself runs
  // on the reaper's thread. Otherwise here, before the registry's lock:
  // `posix_spawnp` waits until the child has changed to its `cwd` and
  // exec'd, which a hung mount could stretch without bound, and the lock
  // is every component's registration and the shutdown's start. A child
  // whose registration is refused (the shutdown began meanwhile) is killed
  // and reaped before the refusal reaches the caller.
  bool async = this_thread_must_not_block();
  if (!async)
    st->spawn();
  // Once its threads start, the reaper owns the child (a failing start
  // kills it, and the reaper reaps it: a second `waitpid` here could reap
  // a reused pid); before, the child is this caller's to kill and reap.
  bool threads_started = false;
  try {
    runtime_access::start_component(rt, st, [&](caf::actor_system& sys) {
      result.actor = sys.spawn<caf::hidden>(process_behavior, st, owner);
      try {
        threads_started = true;
        st->start_threads(caf::actor_cast<caf::actor>(result.actor), async);
      } catch (...) {
        caf::anon_send_exit(result.actor, caf::exit_reason::user_shutdown);
        throw;
      }
    });
  } catch (...) {
    if (!threads_started)
      st->abort_child();
    throw;
  }
  result.pid = async ? -1 : st->pid(); // async: not known yet
  return result;
}

process spawn_process(runtime& rt, process_options opts) {
  return spawn_process(rt, caf::actor{}, std::move(opts));
}

process spawn_process(caf::local_actor* self, process_options opts) {
  if (self == nullptr)
    raise(make_error(errc::invalid_argument, "spawn_process: self is null"));
  return spawn_process(runtime::from(self->system()),
                       caf::actor_cast<caf::actor>(self), std::move(opts));
}

} // namespace weave::actors
