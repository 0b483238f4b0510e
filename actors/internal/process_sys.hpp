#pragma once

// Internal: the system-call helpers shared by process_state's files.
//
// Lock: none here; plain functions.

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <string>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/error.hpp"

namespace weave::actors::internal::sys {

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

[[noreturn]] inline void fail(const std::string& what, int code) {
  raise(make_error(errc::io_error, what + ": " + std::strerror(code)));
}

inline void close_fd(int& fd) noexcept {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}

/// Makes a pipe (both ends close-on-exec); `parent` (0 or 1) is the end the
/// parent keeps, made non-blocking.
inline void make_pipe(int (&fds)[2], int parent, const std::string& prog) {
  if (::pipe2(fds, O_CLOEXEC) != 0)
    fail("pipe2 " + prog, errno);
  auto flags = ::fcntl(fds[parent], F_GETFL);
  ::fcntl(fds[parent], F_SETFL, flags | O_NONBLOCK);
}

/// Polls `fd` for `events` and the wake eventfd; false once woken.
inline bool wait_ready(int fd, short events, int wake_fd) {
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

} // namespace weave::actors::internal::sys
