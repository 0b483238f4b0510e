#include "actors/internal/tcp_socket.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>

#include "runtime/error.hpp"

namespace weave::actors::internal {

tcp_address parse_address(const char* who, const std::string& host,
                          uint16_t port) {
  tcp_address out;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.addr);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out.len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out.len = sizeof(sockaddr_in6);
  } else {
    raise(make_error(errc::invalid_argument,
                     std::string{who} + ": '" + host
                       + "' is not a numeric IPv4 or IPv6 address (resolve "
                         "host names first)"));
  }
  out.text = address_text(reinterpret_cast<sockaddr*>(&out.addr));
  return out;
}

std::string address_text(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof(buf));
    return std::string{buf} + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof(buf));
    return "[" + std::string{buf} + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "?";
}

caf::error io_error(const char* call, const std::string& peer, int code) {
  return make_error(errc::io_error, std::string{call} + " " + peer + ": "
                                      + std::strerror(code));
}

int open_stream_socket(const tcp_address& addr) {
  int fd = ::socket(addr.addr.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    raise(io_error("socket for", addr.text, errno));
  return fd;
}

void set_socket_buffer(int fd, const tcp_options& opts) {
  if (opts.socket_buffer == 0)
    return;
  int size = static_cast<int>(opts.socket_buffer);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

void check_options(const char* who, const tcp_options& opts) {
  auto bad = [&](const char* what) {
    raise(make_error(errc::invalid_argument,
                     std::string{who} + ": tcp_options::" + what));
  };
  if (opts.connect_timeout.count() < 0)
    bad("connect_timeout must not be negative");
  if (opts.read_timeout.count() < 0)
    bad("read_timeout must not be negative");
  if (opts.idle_timeout.count() < 0)
    bad("idle_timeout must not be negative");
  if (opts.write_buffer == 0)
    bad("write_buffer must be at least 1 byte");
  if (opts.read_chunk == 0)
    bad("read_chunk must be at least 1 byte");
  if (opts.max_frame < opts.read_chunk)
    bad("max_frame must be at least read_chunk");
  if (opts.socket_buffer > (size_t{1} << 30))
    bad("socket_buffer must be at most 1 GiB");
  if (opts.max_frame > (size_t{1} << 31))
    bad("max_frame must be at most 2 GiB");
}

} // namespace weave::actors::internal
