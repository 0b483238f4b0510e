#include "actors/signal_actor.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <poll.h>
#include <pthread.h>
#include <thread>
#include <unistd.h>

#include "caf/actor_cast.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/send.hpp"
#include "caf/spawn_options.hpp"
#include "caf/typed_event_based_actor.hpp"

#include "runtime/error.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/internal/thread_activity.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/this_thread.hpp"

namespace weave::actors {

namespace {

/// The signals the actor may catch, and their names.
struct signal_info {
  int signo;
  const char* name;
};

constexpr signal_info allowed_signals[] = {
  {SIGINT, "SIGINT"},   {SIGTERM, "SIGTERM"}, {SIGHUP, "SIGHUP"},
  {SIGUSR1, "SIGUSR1"}, {SIGUSR2, "SIGUSR2"}, {SIGQUIT, "SIGQUIT"},
  {SIGWINCH, "SIGWINCH"},
};

const signal_info* find_signal(int signo) {
  for (auto& s : allowed_signals)
    if (s.signo == signo)
      return &s;
  return nullptr;
}

/// The byte that tells the reader to stop (no signal has number 0).
constexpr unsigned char stop_byte = 0;

/// Bytes the reader takes from the pipe at once.
constexpr size_t read_batch = 64;

// -- the process-wide part: one pipe, written by the handler ----------------

/// The pipe's write end for the handler; -1 while nothing is installed.
/// Lock-free, so the handler may read it.
std::atomic<int> handler_fd{-1};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_signal(int signo) {
  // Async-signal-safe only: one write(2), errno kept.
  int saved = errno;
  int fd = handler_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    auto b = static_cast<unsigned char>(signo);
    auto n = ::write(fd, &b, 1); // a full pipe drops the signal
    (void) n;
  }
  errno = saved;
}

[[noreturn]] void fail(const char* call) {
  auto code = errno;
  raise(make_error(errc::io_error, std::string{"signal actor: "} + call + ": "
                                     + std::strerror(code)));
}

/// The pipe, created once and never closed: a handler that loaded the write
/// end just before an uninstall may still write to it, so it must never
/// become another file. Both ends non-blocking.
struct signal_pipe {
  int read_fd = -1;
  int write_fd = -1;
};

std::mutex pipe_mtx;
signal_pipe the_pipe; // under `pipe_mtx` until created
/// True while an actor's handlers are installed or its thread still runs.
bool installed = false; // under `pipe_mtx`

const signal_pipe& make_pipe() {
  if (the_pipe.read_fd < 0) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
      fail("pipe2");
    the_pipe = signal_pipe{fds[0], fds[1]};
  }
  return the_pipe;
}

/// Reads and discards what a previous installation left in the pipe.
void drain(int fd) {
  unsigned char buf[read_batch];
  while (::read(fd, buf, sizeof(buf)) > 0) {
    // discard
  }
}

// -- one installation -------------------------------------------------------

/// The state shared by the actor, its thread and the runtime's shutdown.
///
/// Lock: `mtx_` guards the flags below; the user's `print` / `on_shutdown`
/// and the runtime's shutdown and dump run without it.
class signal_state : public internal::component,
                     public std::enable_shared_from_this<signal_state> {
public:
  signal_state(runtime& rt, signal_options opts)
    : rt_(&rt), opts_(std::move(opts)) {
    // nop
  }

  internal::shutdown_phase phase() const noexcept override {
    return internal::shutdown_phase::loops;
  }

  void begin_shutdown(shutdown_report&) override {
    stop();
    caf::actor actor;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      actor = actor_;
    }
    // Ends now: weave's own actor, not one the shutdown waits for.
    if (actor)
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  }

  void finish_shutdown(internal::steady_clock::time_point deadline,
                       shutdown_report& report) override {
    std::unique_lock<std::mutex> guard{mtx_};
    // The thread that started this shutdown waits for it: not waited for.
    if (initiator_ || counted_)
      return;
    bool ended = cv_.wait_until(guard, deadline, [this] { return ended_; });
    counted_ = true;
    ++(ended ? report.threads_joined : report.threads_abandoned);
  }

  void release_actors() noexcept override {
    std::unique_lock<std::mutex> guard{mtx_};
    actor_ = nullptr;
  }

  /// Installs the handlers (`installed` claimed by the caller).
  void install(const signal_pipe& p) {
    drain(p.read_fd);
    handler_fd.store(p.write_fd);
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = &on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (auto s : opts_.signals)
      sigaddset(&sa.sa_mask, s);
    for (auto s : opts_.signals) {
      struct sigaction old;
      if (::sigaction(s, &sa, &old) != 0) {
        auto code = errno;
        restore();
        errno = code;
        fail("sigaction");
      }
      old_.emplace_back(s, old);
    }
  }

  /// Starts the thread reading the pipe.
  void start_thread(int read_fd, caf::actor actor) {
    {
      std::unique_lock<std::mutex> guard{mtx_};
      actor_ = std::move(actor);
    }
    internal::census_thread_started();
    auto owner = static_cast<const caf::actor_system_config*>(&rt_->config());
    try {
      std::thread{[self = shared_from_this(), read_fd, owner] {
        {
          internal::service_thread_scope listed{owner, "weave-signals"};
          self->run(read_fd);
        }
        internal::census_thread_ended();
      }}.detach();
    } catch (...) {
      internal::census_thread_ended();
      stop();
      thread_ended();
      fail("std::thread");
    }
  }

  /// Puts the previous dispositions back and tells the thread to stop.
  void stop() noexcept {
    {
      std::unique_lock<std::mutex> guard{mtx_};
      if (stopping_)
        return;
      stopping_ = true;
    }
    restore();
    handler_fd.store(-1);
    auto b = stop_byte;
    auto n = ::write(the_pipe.write_fd, &b, 1);
    (void) n;
  }

private:
  void restore() noexcept {
    for (auto& [signo, old] : old_)
      ::sigaction(signo, &old, nullptr);
    old_.clear();
  }

  void print(const std::string& text) {
    try {
      if (opts_.print)
        opts_.print(text);
      else
        std::fprintf(stderr, "%s\n", text.c_str());
    } catch (...) {
      std::fprintf(stderr, "weave: the signal actor's print threw\n");
    }
  }

  /// The actor's thread: reads signal numbers until told to stop.
  void run(int read_fd) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    try {
      set_this_thread_name("weave-signals");
    } catch (...) {
      // unnamed
    }
    bool done = false;
    while (!done) {
      pollfd pfd{read_fd, POLLIN, 0};
      if (::poll(&pfd, 1, -1) < 0 && errno != EINTR)
        break;
      unsigned char buf[read_batch];
      auto n = ::read(read_fd, buf, sizeof(buf));
      for (ssize_t i = 0; i < n && !done; ++i)
        done = buf[i] == stop_byte || !handle(buf[i]);
    }
    thread_ended();
  }

  void thread_ended() {
    {
      std::unique_lock<std::mutex> guard{mtx_};
      ended_ = true;
    }
    cv_.notify_all();
    std::unique_lock<std::mutex> guard{pipe_mtx};
    installed = false;
  }

  /// Handles one signal; false once the thread must end.
  bool handle(int signo) {
    caf::actor target;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      if (stopping_)
        return false;
      target = actor_;
    }
    if (target)
      caf::anon_send(target, signal_atom::value, signo);
    target = nullptr;
    if (signo == SIGUSR1 && opts_.dump_on_usr1) {
      print(rt_->dump().to_string()); // the shutdown waits for this thread
      return true;
    }
    if ((signo == SIGINT || signo == SIGTERM) && opts_.shutdown_on_terminate) {
      // Printed first, under no lock and before any claim: a print that
      // blocks holds up no shutdown.
      print("weave: " + signal_name(signo) + " received, shutting down");
      {
        std::unique_lock<std::mutex> guard{mtx_};
        // Not stopping: no shutdown reached this actor yet, so the runtime
        // is alive (a shutdown would wait for this thread, and cannot get
        // past this lock). The shutdown starts only if none began: one that
        // began would not wait for its initiator, and could destroy the
        // runtime while this thread still used it.
        if (stopping_ || !internal::runtime_access::claim_shutdown(*rt_))
          return false; // another shutdown runs: it stops this thread
        initiator_ = true;
      }
      auto report = internal::runtime_access::run_claimed_shutdown(*rt_);
      // From here on the runtime may be gone: only the report is used.
      // `runtime::shutdown` itself writes a report with problems to stderr;
      // the default sink (stderr) then gets it once.
      if (opts_.print || report.empty())
        print(report.to_string());
      if (opts_.on_shutdown) {
        try {
          opts_.on_shutdown(signo, report);
        } catch (...) {
          std::fprintf(stderr, "weave: the signal actor's on_shutdown "
                               "threw\n");
        }
      }
      return false;
    }
    return true;
  }

  runtime* rt_;
  const signal_options opts_;
  std::vector<std::pair<int, struct sigaction>> old_;
  std::mutex mtx_;
  std::condition_variable cv_;
  // A strong reference: the actor lives until the runtime's shutdown (or
  // until it is told to exit), whether or not its spawner keeps a handle.
  // It holds this state too; the cycle ends in `release_actors`.
  caf::actor actor_;
  bool stopping_ = false;
  bool initiator_ = false;
  bool ended_ = false;
  bool counted_ = false;
};

struct subscribers_state {
  std::vector<caf::actor> subscribers;
  static inline const char* name = "weave.signal_actor";
};

signal_actor::behavior_type
signal_behavior(signal_actor::stateful_pointer<subscribers_state> self,
                std::shared_ptr<signal_state> st) {
  self->attach_functor([st](const caf::error&) { st->stop(); });
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& subs = self->state.subscribers;
    subs.erase(std::remove_if(subs.begin(), subs.end(),
                              [&](const caf::actor& a) {
                                return a.address() == dm.source;
                              }),
               subs.end());
  });
  return {
    [self](subscribe_atom, caf::actor who) {
      if (!who)
        return;
      auto& subs = self->state.subscribers;
      if (std::find(subs.begin(), subs.end(), who) != subs.end())
        return;
      self->monitor(who);
      subs.emplace_back(std::move(who));
    },
    [self](unsubscribe_atom, caf::actor who) {
      auto& subs = self->state.subscribers;
      auto i = std::find(subs.begin(), subs.end(), who);
      if (i != subs.end()) {
        self->demonitor(who);
        subs.erase(i);
      }
    },
    [self](signal_atom, int signo) {
      for (auto& who : self->state.subscribers)
        caf::anon_send(who, signal_atom::value, signo);
    },
  };
}

} // namespace

std::string signal_name(int signo) {
  if (auto s = find_signal(signo))
    return s->name;
  return "signal " + std::to_string(signo);
}

signal_actor spawn_signal_actor(runtime& rt, signal_options opts) {
  for (auto s : opts.signals)
    if (find_signal(s) == nullptr)
      raise(make_error(errc::invalid_argument,
                       "spawn_signal_actor: " + signal_name(s)
                         + " cannot be caught as a message (allowed: SIGINT, "
                           "SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, "
                           "SIGWINCH)"));
  std::sort(opts.signals.begin(), opts.signals.end());
  opts.signals.erase(std::unique(opts.signals.begin(), opts.signals.end()),
                     opts.signals.end());
  signal_pipe p;
  {
    std::unique_lock<std::mutex> guard{pipe_mtx};
    if (installed)
      raise(make_error(errc::invalid_argument,
                       "spawn_signal_actor: a signal actor is installed "
                       "already (signal handlers are per process; one at a "
                       "time)"));
    p = make_pipe();
    installed = true;
  }
  auto st = std::make_shared<signal_state>(rt, std::move(opts));
  signal_actor actor;
  try {
    internal::runtime_access::start_component(
      rt, st, [&](caf::actor_system& sys) {
        actor = sys.spawn<caf::hidden>(signal_behavior, st);
      });
    st->install(p);
    st->start_thread(p.read_fd, caf::actor_cast<caf::actor>(actor));
  } catch (...) {
    st->stop();
    if (actor)
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    std::unique_lock<std::mutex> guard{pipe_mtx};
    installed = false;
    throw;
  }
  return actor;
}

} // namespace weave::actors
