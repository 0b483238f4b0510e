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

void process_state::actor_ended() {
  {
    std::unique_lock<std::mutex> guard{mtx_};
    actor_ended_ = true;
  }
  cv_.notify_all();
}

// -- shutdown -----------------------------------------------------------------

void process_state::begin_shutdown(shutdown_report&) {
  // SIGTERM went out in the first phase (terminator_part).
}

bool process_state::settle_jobs(
  weave::internal::steady_clock::time_point deadline, shutdown_report&) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (counted_)
    return false;
  if (!cv_.wait_until(guard, deadline, [this] { return reaped_; })) {
    // The first SIGKILL's time: `finish_shutdown` settles again, and must
    // not restart the grace (which would add up child after child).
    if (killed_at_ == weave::internal::steady_clock::time_point{})
      killed_at_ = weave::internal::steady_clock::now();
    guard.unlock();
    send_signal(SIGKILL);
  }
  return true;
}

void process_state::finish_shutdown(
  weave::internal::steady_clock::time_point deadline,
  shutdown_report& report) {
  using weave::internal::steady_clock;
  // At the deadline SIGKILL (the runtime's shutdown has done this for
  // every child of the phase before any child's wait below).
  if (!settle_jobs(deadline, report))
    return;
  std::unique_lock<std::mutex> guard{mtx_};
  // From the SIGKILL (sent by the phase's settling, for every child
  // before any of these waits), not from now: graces that began now would
  // add up, child after child.
  // A child that needed no SIGKILL is reaped: its grace (for its pumps and
  // its actor, which end at once when stopped) counts from now, as it did
  // before the graces were made to run side by side.
  auto from = killed_at_ != steady_clock::time_point{}
                ? std::max(deadline, killed_at_)
                : std::max(deadline, steady_clock::now());
  auto limit = weave::internal::saturating_add(
    from,
    std::chrono::duration_cast<steady_clock::duration>(reap_grace));
  cv_.wait_until(guard, limit, [this] { return reaped_; });
  guard.unlock();
  stop_pumps();
  guard.lock();
  cv_.wait_until(guard, limit, [this] { return threads_running_ == 0; });
  // The actor ends too (it answers a pending `wait` as it goes): a user's
  // handle kept past the shutdown must not hold an actor that outlives the
  // actor system.
  auto weak = actor_weak_;
  guard.unlock();
  if (auto ptr = weak.lock())
    caf::anon_send_exit(caf::actor_cast<caf::actor>(ptr),
                        caf::exit_reason::user_shutdown);
  guard.lock();
  if (weak)
    cv_.wait_until(guard, limit, [this] { return actor_ended_; });
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
