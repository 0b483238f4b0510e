#pragma once

// Helpers of the remote pool tests: worker processes started by the test
// (fork + exec of a worker program with --weave-worker-listen=127.0.0.1:0),
// whose port is read from the line they print, and which are reaped when
// the helper goes (no zombies); a free port nobody listens on.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/remote_pool.hpp"
#include "tests/process_pool_support.hpp"

namespace weave::test {

constexpr const char* tls_worker_program = "tests/remote_pool_tls_worker";

/// How long a worker may take to print its port.
constexpr auto worker_start_limit = std::chrono::seconds{30};

inline runtime_config remote_config(const std::string& app_id
                                    = default_app_id) {
  runtime_config cfg;
  enable_remote_pools(cfg, app_id);
  return cfg;
}

/// One worker process listening on 127.0.0.1 (a port of its choice).
class worker_process {
public:
  explicit worker_process(std::vector<std::string> extra = {},
                          std::string program = worker_program,
                          std::string listen = "127.0.0.1:0") {
    std::vector<std::string> args{program, "--weave-worker-listen=" + listen};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& x : args)
      argv.push_back(x.data());
    argv.push_back(nullptr);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe failed");
    auto parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(1);
      ::dup2(fds[1], STDOUT_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
    read_line();
  }

  ~worker_process() {
    stop(SIGTERM);
    if (out_ >= 0)
      ::close(out_);
  }

  worker_process(const worker_process&) = delete;
  worker_process& operator=(const worker_process&) = delete;

  int pid() const {
    return pid_;
  }

  uint16_t port() const {
    return port_;
  }

  /// "127.0.0.1:<port>", or "" if it did not start.
  std::string address() const {
    return port_ == 0 ? std::string{}
                      : "127.0.0.1:" + std::to_string(port_);
  }

  /// What it printed (its listening line), for messages.
  const std::string& line() const {
    return line_;
  }

  /// Sends `sig` and reaps it (SIGKILL if it has not exited after a while).
  void stop(int sig) {
    if (pid_ <= 0)
      return;
    ::kill(pid_, sig);
    auto until = std::chrono::steady_clock::now() + worker_start_limit;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= until) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      ::usleep(1000); // polls the exit of a process: no other way to wait
    }
    pid_ = 0;
  }

private:
  void read_line() {
    auto until = std::chrono::steady_clock::now() + worker_start_limit;
    char ch = 0;
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0)
        continue;
      if (::read(out_, &ch, 1) != 1)
        break;
      if (ch == '\n')
        break;
      line_ += ch;
    }
    auto at = line_.rfind(':');
    auto pid_at = line_.find(" pid ");
    if (at != std::string::npos && pid_at != std::string::npos)
      port_ = static_cast<uint16_t>(
        std::stoul(line_.substr(at + 1, pid_at - at - 1)));
  }

  int pid_ = 0;
  int out_ = -1;
  uint16_t port_ = 0;
  std::string line_;
};

/// A port on 127.0.0.1 that nobody listens on (bound, then closed).
inline uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// A socket that listens on 127.0.0.1 and never answers (the kernel
/// completes TCP handshakes, nobody speaks BASP): a frozen worker's port.
class silent_listener {
public:
  silent_listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 16);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~silent_listener() {
    ::close(fd_);
  }
  std::string address() const {
    return "127.0.0.1:" + std::to_string(port_);
  }

private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

} // namespace weave::test
