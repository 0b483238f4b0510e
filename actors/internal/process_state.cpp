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

#include "runtime/error.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/this_thread.hpp"

extern char** environ;

namespace weave::actors::internal {

namespace {

#ifdef SYS_pidfd_open
constexpr long pidfd_open_nr = SYS_pidfd_open;
#else
constexpr long pidfd_open_nr = 434;
#endif

#ifdef SYS_pidfd_send_signal
constexpr long pidfd_send_signal_nr = SYS_pidfd_send_signal;
#else
constexpr long pidfd_send_signal_nr = 424;
#endif

[[noreturn]] void fail(const std::string& what, int code) {
  raise(make_error(errc::io_error, what + ": " + std::strerror(code)));
}

void close_fd(int& fd) noexcept {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}

/// Makes a pipe (both ends close-on-exec); `parent` (0 or 1) is the end the
/// parent keeps, made non-blocking.
void make_pipe(int (&fds)[2], int parent, const std::string& prog) {
  if (::pipe2(fds, O_CLOEXEC) != 0)
    fail("pipe2 " + prog, errno);
  auto flags = ::fcntl(fds[parent], F_GETFL);
  ::fcntl(fds[parent], F_SETFL, flags | O_NONBLOCK);
}

/// Polls `fd` for `events` and the wake eventfd; false once woken.
bool wait_ready(int fd, short events, int wake_fd) {
  for (;;) {
    pollfd p[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    return p[1].revents == 0;
  }
}

} // namespace

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

// -- the threads --------------------------------------------------------------

void process_state::thread_ended() {
  {
    std::unique_lock<std::mutex> guard{mtx_};
    --threads_running_;
  }
  cv_.notify_all();
}

void process_state::reap_main() {
  if (pidfd_ >= 0) {
    // Readable once the child has exited.
    pollfd p{pidfd_, POLLIN, 0};
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
      // again
    }
  }
  // Waits without reaping: until reaped under the lock, the pid cannot be
  // reused, so `send_signal` never hits another process.
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  int rc;
  while ((rc = ::waitid(P_PID, static_cast<id_t>(pid_), &info,
                        WEXITED | WNOWAIT))
           < 0
         && errno == EINTR) {
    // again
  }
  int code = rc < 0 ? errno : 0;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    reaped_ = true;
    if (rc == 0) {
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        // again
      }
    }
    close_fd(pidfd_);
  }
  if (rc != 0) {
    set_outcome(make_error(errc::io_error,
                           "waitid " + quoted_ + ": " + std::strerror(code)));
    return;
  }
  exit_status st;
  st.pid = pid_;
  if (info.si_code == CLD_EXITED) {
    st.code = info.si_status;
  } else {
    st.signal = info.si_status;
  }
  set_outcome(st);
}

void process_state::set_outcome(result<exit_status> r) {
  caf::actor actor;
  caf::actor owner;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    outcome_ = r;
    actor = std::move(actor_);
    actor_ = nullptr;
    owner = std::move(owner_);
    owner_ = nullptr;
  }
  cv_.notify_all();
  // Nothing more can be written to a child that has exited.
  if (in)
    in->close(make_error(errc::closed, "the process " + quoted_ + " exited"));
  if (owner) {
    if (r)
      caf::anon_send(owner, exited_atom::value, *r);
    else
      caf::anon_send(owner, exited_atom::value, r.error());
  }
  if (actor)
    caf::anon_send(actor, reaped_atom::value);
  exit_promise.set_result(std::move(r));
}

void process_state::read_main(int fd, channel<std::string> ch,
                              const char* stream) {
  std::vector<char> buf(opts_.chunk_size);
  caf::error failure;
  auto tok = stop_.get_token();
  while (wait_ready(fd, POLLIN, wake_fd_)) {
    auto n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      failure = make_error(errc::io_error, std::string{"read "} + stream + " "
                                             + quoted_ + ": "
                                             + std::strerror(errno));
      break;
    }
    if (n == 0)
      break; // end of file
    auto s = ch.put(std::string(buf.data(), static_cast<size_t>(n)), tok);
    if (s == channel_status::closed || s == channel_status::stopped)
      break; // the consumer closed it, or shutdown
  }
  ::close(fd);
  if (failure)
    ch.close(std::move(failure));
  else
    ch.close();
}

void process_state::write_main(int fd, channel<std::string> ch) {
  caf::error failure;
  auto tok = stop_.get_token();
  bool going = true;
  while (going) {
    auto r = ch.get(tok);
    if (!r)
      break; // closed (and drained), or shutdown
    const std::string& data = *r.value;
    size_t off = 0;
    while (off < data.size()) {
      auto n = ::write(fd, data.data() + off, data.size() - off);
      if (n >= 0) {
        off += static_cast<size_t>(n);
      } else if (errno == EAGAIN) {
        if (!wait_ready(fd, POLLOUT, wake_fd_)) {
          going = false;
          break;
        }
      } else if (errno != EINTR) {
        failure = make_error(errc::io_error, "write stdin " + quoted_ + ": "
                                               + std::strerror(errno));
        going = false;
        break;
      }
    }
  }
  ::close(fd); // end of file for the child
  if (failure)
    ch.close(std::move(failure));
  else
    ch.close();
}

void process_state::stop_pumps() noexcept {
  stop_.request_stop(errc::shut_down);
  uint64_t one = 1;
  auto n = ::write(wake_fd_, &one, sizeof(one));
  (void) n;
}

// -- control ------------------------------------------------------------------

bool process_state::send_signal(int signo) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (reaped_ || failed_)
    return false;
  if (pid_ <= 0) {
    // Not spawned yet: sent right after the spawn (SIGKILL wins).
    if (pending_signal_ != SIGKILL)
      pending_signal_ = signo;
    return true;
  }
  signal_locked(signo);
  return true;
}

void process_state::signal_locked(int signo) {
  if (opts_.new_process_group) {
    ::kill(-pid_, signo);
  } else if (pidfd_ < 0
             || ::syscall(pidfd_send_signal_nr, pidfd_, signo, nullptr, 0)
                  != 0) {
    ::kill(pid_, signo);
  }
}

std::optional<result<exit_status>> process_state::outcome() {
  std::unique_lock<std::mutex> guard{mtx_};
  return outcome_;
}

// -- shutdown -----------------------------------------------------------------

void process_state::begin_shutdown(shutdown_report&) {
  // SIGTERM went out in the first phase (terminator_part).
}

void process_state::finish_shutdown(
  weave::internal::steady_clock::time_point deadline,
  shutdown_report& report) {
  using weave::internal::steady_clock;
  std::unique_lock<std::mutex> guard{mtx_};
  if (counted_)
    return;
  if (!cv_.wait_until(guard, deadline, [this] { return reaped_; })) {
    guard.unlock();
    send_signal(SIGKILL);
    guard.lock();
  }
  auto limit = weave::internal::saturating_add(
    std::max(deadline, steady_clock::now()),
    std::chrono::duration_cast<steady_clock::duration>(reap_grace));
  cv_.wait_until(guard, limit, [this] { return reaped_; });
  guard.unlock();
  stop_pumps();
  guard.lock();
  cv_.wait_until(guard, limit, [this] { return threads_running_ == 0; });
  if (counted_)
    return;
  counted_ = true;
  report.threads_joined += threads_started_ - threads_running_;
  report.threads_abandoned += threads_running_;
}

void process_state::release_actors() noexcept {
  caf::actor actor;
  caf::actor owner;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    actor = std::move(actor_);
    actor_ = nullptr;
    owner = std::move(owner_);
    owner_ = nullptr;
  }
}

} // namespace weave::actors::internal
