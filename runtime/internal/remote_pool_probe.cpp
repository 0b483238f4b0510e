// Reads the application ids a worker announces, to name them when CAF
// refused the connection for an id mismatch (CAF reports only that they
// differ). A BASP server sends its handshake first, as soon as a client
// connects: a header, then this node's id and its application ids. The
// probe connects with plain TCP, reads that much with a deadline, and
// closes. Never under a lock; on the pool's own actor thread.

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fcntl.h>

#include "caf/binary_deserializer.hpp"
#include "caf/io/basp/header.hpp"
#include "caf/node_id.hpp"

#include "runtime/internal/remote_pool_impl.hpp"

namespace weave::internal {

namespace {

/// Waits for `events` on `fd` until `until`; false on timeout or error.
bool wait_for(int fd, short events, steady_clock::time_point until) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  until - steady_clock::now())
                  .count();
    if (left <= 0)
      return false;
    pollfd p{fd, events, 0};
    auto n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0)
      return (p.revents & events) != 0;
    if (n < 0 && errno != EINTR)
      return false;
  }
}

bool read_exactly(int fd, std::vector<char>& buf, size_t n,
                  steady_clock::time_point until) {
  buf.resize(n);
  size_t got = 0;
  while (got < n) {
    if (!wait_for(fd, POLLIN, until))
      return false;
    auto r = ::read(fd, buf.data() + got, n - got);
    if (r <= 0)
      return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

} // namespace

std::vector<std::string> probe_app_ids(const std::string& host, uint16_t port,
                                       caf::timespan timeout) {
  /// The largest handshake payload read.
  constexpr uint32_t max_payload = 64 * 1024;
  std::vector<std::string> result;
  auto until = saturating_add(steady_clock::now(), timeout);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints,
                    &found)
      != 0)
    return result;
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    0);
  bool connected = false;
  if (fd >= 0) {
    auto rc = ::connect(fd, found->ai_addr, found->ai_addrlen);
    connected = rc == 0
                || (errno == EINPROGRESS && wait_for(fd, POLLOUT, until));
  }
  ::freeaddrinfo(found);
  std::vector<char> buf;
  if (connected && read_exactly(fd, buf, caf::io::basp::header_size, until)) {
    caf::io::basp::header hdr;
    caf::binary_deserializer head{nullptr, buf};
    if (!head(hdr)
        && hdr.operation == caf::io::basp::message_type::server_handshake
        && hdr.payload_len <= max_payload
        && read_exactly(fd, buf, hdr.payload_len, until)) {
      caf::node_id node;
      std::vector<std::string> ids;
      caf::binary_deserializer body{nullptr, buf};
      if (!body(node, ids))
        result = std::move(ids);
    }
  }
  if (fd >= 0)
    ::close(fd);
  return result;
}

} // namespace weave::internal
