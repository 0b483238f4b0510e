#pragma once

// Internal: what weave's TCP listener and connection actors share: numeric
// addresses, errors naming call, peer and errno text, option checks, and
// spawning a connection actor for a socket.

#include <memory>
#include <string>
#include <sys/socket.h>

#include "caf/actor_system.hpp"
#include "caf/error.hpp"

#include "actors/internal/tcp_reactor.hpp"
#include "actors/tcp_protocol.hpp"

namespace weave::actors::internal {

/// A numeric socket address and its text ("127.0.0.1:80", "[::1]:80").
struct tcp_address {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string text;
};

/// Parses a numeric IPv4/IPv6 address; throws `invalid_argument`.
tcp_address parse_address(const char* who, const std::string& host,
                          uint16_t port);

/// The text of a socket address ("127.0.0.1:80").
std::string address_text(const sockaddr* sa);

/// `io_error` "<call> <peer>: <strerror(code)>".
caf::error io_error(const char* call, const std::string& peer, int code);

/// A new non-blocking, close-on-exec stream socket for `addr`'s family;
/// throws `io_error` ("socket for <addr>") if the kernel refuses.
int open_stream_socket(const tcp_address& addr);

/// Applies `opts.socket_buffer` (if set) to `fd`.
void set_socket_buffer(int fd, const tcp_options& opts);

/// Throws `invalid_argument` naming the bad option.
void check_options(const char* who, const tcp_options& opts);

/// Spawns the actor that owns `fd` (non-blocking). `connecting`: a
/// non-blocking connect is in progress; `connect_errno`: it failed at once.
tcp_connection spawn_connection(caf::actor_system& sys,
                                std::shared_ptr<tcp_reactor> reactor, int fd,
                                std::string peer, const tcp_options& opts,
                                bool connecting, int connect_errno,
                                std::unique_ptr<tcp_protocol> protocol = {});

} // namespace weave::actors::internal
