#include "actors/internal/process_state.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "caf/send.hpp"

#include "actors/internal/process_sys.hpp"
#include "runtime/error.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/this_thread.hpp"

extern char** environ;

namespace weave::actors::internal {

using namespace sys;

// -- the first-phase part: SIGTERM --------------------------------------------

class process_state::terminator_part : public weave::internal::component {
public:
  explicit terminator_part(std::weak_ptr<process_state> st)
    : st_(std::move(st)) {
    // nop
  }

  weave::internal::shutdown_phase phase() const noexcept override {
    return weave::internal::shutdown_phase::loops;
  }

  void begin_shutdown(shutdown_report&) override {
    if (auto st = st_.lock())
      st->send_signal(SIGTERM);
  }

  void finish_shutdown(weave::internal::steady_clock::time_point,
                       shutdown_report&) override {
    // The child is waited for in the last phase (see process_state).
  }

private:
  std::weak_ptr<process_state> st_;
};

// -- setup --------------------------------------------------------------------

process_state::process_state(process_options opts, caf::actor owner)
  : opts_(std::move(opts)),
    quoted_("'" + opts_.argv.front() + "'"),
    owner_(std::move(owner)) {
  // nop
}

process_state::~process_state() {
  close_fd(in_fd_);
  close_fd(out_fd_);
  close_fd(err_fd_);
  close_fd(pidfd_);
  close_fd(wake_fd_);
}

weave::internal::component_ptr process_state::terminator() {
  if (!terminator_)
    terminator_ = std::make_shared<terminator_part>(weak_from_this());
  return terminator_;
}

void process_state::spawn() {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0)
    fail("eventfd " + quoted_, errno);
  int in_p[2] = {-1, -1};
  int out_p[2] = {-1, -1};
  int err_p[2] = {-1, -1};
  auto close_all = [&] {
    for (auto* p : {&in_p, &out_p, &err_p}) {
      close_fd((*p)[0]);
      close_fd((*p)[1]);
    }
  };
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  std::vector<char*> argv;
  std::vector<char*> envp;
  int rc = 0;
  pid_t pid = -1;
  try {
    auto wire = [&](stdio_mode mode, int (&p)[2], int target) {
      bool child_reads = target == STDIN_FILENO;
      if (mode == stdio_mode::pipe) {
        make_pipe(p, child_reads ? 1 : 0, quoted_);
        posix_spawn_file_actions_adddup2(&fa, p[child_reads ? 0 : 1], target);
      } else if (mode == stdio_mode::null) {
        posix_spawn_file_actions_addopen(&fa, target, "/dev/null",
                                         child_reads ? O_RDONLY : O_WRONLY, 0);
      }
    };
    wire(opts_.stdin_mode, in_p, STDIN_FILENO);
    wire(opts_.stdout_mode, out_p, STDOUT_FILENO);
    wire(opts_.stderr_mode, err_p, STDERR_FILENO);
    if (!opts_.cwd.empty())
      posix_spawn_file_actions_addchdir_np(&fa, opts_.cwd.c_str());
    // weave's threads block signals and the signal actor installs handlers:
    // the child starts with an empty mask and default dispositions.
    sigset_t none;
    sigset_t all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (opts_.new_process_group) {
      flags |= POSIX_SPAWN_SETPGROUP;
      posix_spawnattr_setpgroup(&attr, 0);
    }
    posix_spawnattr_setflags(&attr, flags);
    for (auto& a : opts_.argv)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (opts_.env) {
      for (auto& e : *opts_.env)
        envp.push_back(const_cast<char*>(e.c_str()));
      envp.push_back(nullptr);
    }
    rc = ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(),
                        opts_.env ? envp.data() : environ);
  } catch (...) {
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close_all();
    throw;
  }
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  // The child's ends are the child's now.
  close_fd(in_p[0]);
  close_fd(out_p[1]);
  close_fd(err_p[1]);
  if (rc != 0) {
    {
      std::unique_lock<std::mutex> guard{mtx_};
      failed_ = true;
    }
    close_all();
    auto what = "posix_spawn " + quoted_;
    if (!opts_.cwd.empty())
      what += " in '" + opts_.cwd + "'";
    fail(what, rc);
  }
  in_fd_ = in_p[1];
  out_fd_ = out_p[0];
  err_fd_ = err_p[0];
  // A pidfd where the kernel has one (Linux 5.3); else `waitid` blocks.
  auto fd = ::syscall(pidfd_open_nr, pid, 0);
  std::unique_lock<std::mutex> guard{mtx_};
  pid_ = pid;
  pidfd_ = fd >= 0 ? static_cast<int>(fd) : -1;
  // A signal asked for before the child existed (its owner ended, shutdown).
  if (auto signo = std::exchange(pending_signal_, 0))
    signal_locked(signo);
}

bool process_state::start_thread(const char* name, std::function<void()> body) {
  {
    std::unique_lock<std::mutex> guard{mtx_};
    ++threads_started_;
    ++threads_running_;
  }
  weave::internal::census_thread_started();
  try {
    std::thread{[self = shared_from_this(), name, body = std::move(body)] {
      sigset_t all;
      sigfillset(&all);
      // Also makes a write to a closed pipe fail with EPIPE instead of
      // raising SIGPIPE for the whole process.
      pthread_sigmask(SIG_BLOCK, &all, nullptr);
      try {
        set_this_thread_name(name);
      } catch (...) {
        // unnamed
      }
      body();
      self->thread_ended();
      weave::internal::census_thread_ended();
    }}.detach();
    return true;
  } catch (...) {
    weave::internal::census_thread_ended();
    std::unique_lock<std::mutex> guard{mtx_};
    --threads_started_;
    --threads_running_;
    return false;
  }
}

void process_state::start_threads(caf::actor actor, bool async) {
  {
    std::unique_lock<std::mutex> guard{mtx_};
    actor_weak_ = caf::actor_cast<caf::weak_actor_ptr>(actor);
    actor_ = std::move(actor);
  }
  bool ok = start_thread("weave-proc-wait", [this, async] {
    if (async) {
      try {
        spawn();
        start_pumps();
      } catch (const std::exception& e) {
        if (!spawned()) {
          // Nothing to reap: the failure is the outcome.
          auto why = dynamic_cast<const weave::exception*>(&e) != nullptr
                       ? static_cast<const weave::exception&>(e).error()
                       : make_error(errc::io_error, "posix_spawn " + quoted_
                                                      + ": " + e.what());
          if (out)
            out->close(why);
          if (err)
            err->close(why);
          {
            // No child, nothing to reap: the shutdown must not wait.
            std::unique_lock<std::mutex> guard{mtx_};
            reaped_ = true;
          }
          set_outcome(std::move(why));
          return;
        }
        send_signal(SIGKILL); // a pump did not start: reaped below
        stop_pumps();
      }
    }
    reap_main();
  });
  if (!ok) {
    abort_child();
    fail("std::thread " + quoted_, EAGAIN);
  }
  if (!async)
    start_pumps();
}

void process_state::start_pumps() {
  struct pump {
    const char* name;
    int* fd;
    std::optional<channel<std::string>>* ch;
    const char* stream;
  };
  for (auto& p : {pump{"weave-proc-in", &in_fd_, &in, nullptr},
                  pump{"weave-proc-out", &out_fd_, &out, "stdout"},
                  pump{"weave-proc-err", &err_fd_, &err, "stderr"}}) {
    if (*p.fd < 0 || !*p.ch)
      continue;
    int fd = std::exchange(*p.fd, -1);
    auto ch = **p.ch;
    auto stream = p.stream;
    bool ok = start_thread(p.name, [this, fd, ch, stream]() mutable {
      if (stream == nullptr)
        write_main(fd, std::move(ch));
      else
        read_main(fd, std::move(ch), stream);
    });
    if (!ok) {
      ::close(fd);
      send_signal(SIGKILL); // the reaper reaps it
      stop_pumps();
      fail("std::thread " + quoted_, EAGAIN);
    }
  }
}

bool process_state::spawned() {
  std::unique_lock<std::mutex> guard{mtx_};
  return pid_ > 0;
}

pid_t process_state::pid() {
  std::unique_lock<std::mutex> guard{mtx_};
  return pid_;
}

void process_state::abort_child() noexcept {
  caf::actor actor;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (reaped_ || pid_ <= 0)
      return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      // again
    }
    reaped_ = true;
    close_fd(pidfd_);
    actor = std::move(actor_);
    actor_ = nullptr;
  }
  cv_.notify_all();
}


} // namespace weave::actors::internal
