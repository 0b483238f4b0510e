// The listener actor: owns one listening socket; `accept` requests are
// served in order, each by a non-blocking accept4 when the reactor says the
// socket is readable.
#include <cerrno>
#include <deque>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "caf/actor_cast.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/response_promise.hpp"
#include "caf/send.hpp"
#include "caf/spawn_options.hpp"
#include "caf/stateful_actor.hpp"

#include "actors/internal/tcp_socket.hpp"
#include "actors/internal/tcp_stop.hpp"
#include "runtime/error.hpp"

namespace weave::actors::internal {

namespace {

struct listener_state {
  static inline const char* name = "weave.tcp_listener";

  std::shared_ptr<tcp_reactor> reactor;
  uint64_t id = 0;
  int fd = -1;
  std::string address;
  uint16_t port = 0;
  tcp_options opts;
  std::deque<caf::response_promise> accepts;
  caf::error failure;
  bool armed = false;

  void fail(caf::error err) {
    if (failure)
      return;
    failure = err;
    if (fd >= 0) {
      if (id != 0)
        reactor->unwatch(fd);
      ::close(fd);
      fd = -1;
    }
    for (auto& rp : accepts)
      rp.deliver(err);
    accepts.clear();
  }

  ~listener_state() {
    fail(make_error(errc::closed, "tcp listener on " + address + " ended"));
    if (id != 0)
      reactor->forget(id);
  }
};

using listener_actor = caf::stateful_actor<listener_state>;

void pump(listener_actor* self) {
  auto& s = self->state;
  while (!s.failure && !s.accepts.empty()) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    int fd = ::accept4(s.fd, reinterpret_cast<sockaddr*>(&peer), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!s.armed) {
          s.reactor->arm(s.id, s.fd, true, false);
          s.armed = true;
        }
        return;
      }
      // EMFILE and the like: this request fails, the listener stays.
      auto rp = std::move(s.accepts.front());
      s.accepts.pop_front();
      rp.deliver(io_error("accept on", s.address, errno));
      continue;
    }
    auto rp = std::move(s.accepts.front());
    s.accepts.pop_front();
    auto conn = spawn_connection(self->system(), s.reactor, fd,
                                 address_text(
                                   reinterpret_cast<sockaddr*>(&peer)),
                                 s.opts, false, 0);
    rp.deliver(conn);
  }
}

caf::behavior listener(listener_actor* self, std::shared_ptr<tcp_reactor> r,
                       int fd, std::string address, uint16_t port,
                       tcp_options opts) {
  auto& st = self->state;
  st.reactor = std::move(r);
  st.fd = fd;
  st.address = std::move(address);
  st.port = port;
  st.opts = opts;
  try {
    st.id = st.reactor->add(fd, caf::actor_cast<caf::actor>(self));
  } catch (const weave::exception& e) {
    // Unlisted (the shutdown began, or epoll refused the socket):
    // nothing would stop it later, so it stops itself, after answering
    // what was sent to it before with the error.
    st.fail(e.error());
    caf::anon_send(self, tcp_stop_atom::value);
  }
  return {
    [self](accept_atom) {
      auto& s = self->state;
      auto rp = self->make_response_promise();
      if (s.failure) {
        rp.deliver(s.failure);
        return rp;
      }
      s.accepts.push_back(rp);
      pump(self);
      return rp;
    },
    [self](tcp_port_atom) { return self->state.port; },
    [self](tcp_close_atom) {
      self->state.fail(make_error(errc::closed,
                                  "tcp listener on " + self->state.address
                                    + ": closed"));
    },
    [self](tcp_ready_atom, uint32_t) {
      self->state.armed = false;
      pump(self);
    },
    [self](tcp_stop_atom) {
      stop_for_shutdown(self, "tcp listener on " + self->state.address);
    },
  };
}

} // namespace

} // namespace weave::actors::internal

namespace weave::actors {

tcp_listener spawn_tcp_listener(runtime& rt, const std::string& host,
                                uint16_t port, tcp_options opts,
                                int backlog) {
  internal::check_options("spawn_tcp_listener", opts);
  if (backlog < 0)
    raise(make_error(errc::invalid_argument,
                     "spawn_tcp_listener: backlog must not be negative"));
  auto addr = internal::parse_address("spawn_tcp_listener", host, port);
  auto& sys = rt.system();
  auto reactor = internal::tcp_reactor::of(rt);
  int fd = internal::open_stream_socket(addr);
  auto fail = [&](const char* call) {
    auto code = errno;
    ::close(fd);
    raise(internal::io_error(call, addr.text, code));
  };
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  internal::set_socket_buffer(fd, opts); // inherited by accepted sockets
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr.addr), addr.len) != 0)
    fail("bind");
  if (::listen(fd, backlog) != 0)
    fail("listen on");
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0)
    fail("getsockname of");
  auto bound_text = internal::address_text(reinterpret_cast<sockaddr*>(&bound));
  uint16_t bound_port = bound.ss_family == AF_INET6
    ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
    : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  auto a = sys.spawn<caf::hidden>(internal::listener, std::move(reactor), fd,
                                  bound_text, bound_port, opts);
  return caf::actor_cast<tcp_listener>(a);
}

} // namespace weave::actors
