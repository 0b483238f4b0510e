#pragma once

// Shared by the TCP review suites: descriptor counts from /proc, a case
// run in a child process (one that may crash), a plain blocking listener,
// and waiting for a pending request's outcome on the test thread.

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <netinet/in.h>
#include <spawn.h>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>

#include "caf/all.hpp"

extern char** environ;

namespace weave::test::tcp {

/// This process's descriptors whose link starts with `prefix` (all if
/// empty): "socket:", "anon_inode:[eventpoll]", "anon_inode:[eventfd]".
inline size_t open_fds(const std::string& prefix = "") {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(d)) {
      if (e->d_name[0] == '.')
        continue;
      char link[256] = {};
      auto path = std::string{"/proc/self/fd/"} + e->d_name;
      if (::readlink(path.c_str(), link, sizeof(link) - 1) < 0)
        continue;
      if (std::string{link}.compare(0, prefix.size(), prefix) == 0)
        ++n;
    }
    ::closedir(d);
  }
  return n;
}

/// Sockets, epoll and eventfd descriptors: what the TCP actors and their
/// reactor own (weave's thread monitor keeps /proc files open besides).
inline size_t tcp_fds() {
  return open_fds("socket:") + open_fds("anon_inode:[eventpoll]")
         + open_fds("anon_inode:[eventfd]");
}

/// Runs this test binary again with only `test_case` (marked skip, so that
/// it runs nowhere else), and describes how it ended ("exit 0" when it
/// passed): a case that may crash the process runs there.
inline std::string run_isolated(const std::string& test_case) {
  std::string filter = "--test-case=" + test_case;
  std::string exe = "/proc/self/exe";
  std::string no_skip = "--no-skip";
  char* argv[] = {exe.data(), filter.data(), no_skip.data(), nullptr};
  pid_t pid = -1;
  if (::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, environ) != 0)
    return "posix_spawn failed";
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " ("
           + ::strsignal(WTERMSIG(status)) + ")";
  return "exit " + std::to_string(WEXITSTATUS(status));
}

/// A plain blocking listening socket on loopback (port in `port`).
struct raw_listener {
  int fd = -1;
  uint16_t port = 0;

  explicit raw_listener(int backlog = 8, int rcvbuf = 0) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    if (rcvbuf > 0)
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0);
    REQUIRE(::listen(fd, backlog) == 0);
    socklen_t len = sizeof(sa);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    port = ntohs(sa.sin_port);
  }

  /// The next peer, with a receive timeout as the test's own watchdog.
  int accept_one() {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(c >= 0);
    timeval tv{10, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return c;
  }

  ~raw_listener() {
    ::close(fd);
  }
};

/// The outcome of a pending request, received on the test thread.
template <class T>
struct outcome {
  bool ok = false;
  T value{};
  caf::error err;
};

template <class T, class Handle>
outcome<T> wait_for(Handle& pending) {
  outcome<T> out;
  pending.receive(
    [&](T& x) {
      out.ok = true;
      out.value = std::move(x);
    },
    [&](caf::error& e) { out.err = std::move(e); });
  return out;
}

} // namespace weave::test::tcp
