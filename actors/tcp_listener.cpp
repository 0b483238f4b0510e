// The listener actor: owns one listening socket; `accept` requests are
// served in order, each by a non-blocking accept4 when the reactor says the
// socket is readable.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
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
  /// `spawn_tcp_server`: every accepted connection gets `factory()`.
  tcp_protocol_factory factory;

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

/// The most connections one turn of a server accepts (then the readiness
/// comes again: other actors get the thread meanwhile).
constexpr int accepts_per_turn = 64;

/// After `accept` failed for lack of descriptors (EMFILE and the like), the
/// server tries again this much later instead of spinning on a readiness
/// that stays.
constexpr auto accept_retry = std::chrono::milliseconds{100};

void arm(listener_state& s) {
  if (!s.armed) {
    s.reactor->arm(s.id, s.fd, true, false);
    s.armed = true;
  }
}

/// The next pending connection (non-blocking) and its peer's address in
/// `who`; -1 with `errno` set when none waits (EAGAIN) or the accept failed
/// (EMFILE and the like). Interrupted and aborted accepts are retried.
int accept_next(listener_state& s, std::string& who) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    int fd = ::accept4(s.fd, reinterpret_cast<sockaddr*>(&peer), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      who = address_text(reinterpret_cast<sockaddr*>(&peer));
      return fd;
    }
    if (errno != EINTR && errno != ECONNABORTED)
      return -1;
  }
}

/// A server's accept loop: each connection gets a protocol of its own.
void serve(listener_actor* self) {
  auto& s = self->state;
  for (int i = 0; !s.failure && i < accepts_per_turn; ++i) {
    std::string who;
    int fd = accept_next(s, who);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        arm(s);
        return;
      }
      std::fprintf(stderr, "weave: tcp server on %s: accept failed (%s); "
                           "trying again in 100 ms\n",
                   s.address.c_str(), std::strerror(errno));
      self->delayed_send(self, accept_retry, tcp_ready_atom::value,
                         uint32_t{0});
      return;
    }
    std::unique_ptr<tcp_protocol> proto;
    const char* why = "returned null";
    std::string what;
    try {
      proto = s.factory();
    } catch (const std::exception& e) {
      why = "threw: ";
      what = e.what();
    } catch (...) {
      why = "threw a non-std exception";
    }
    if (!proto) {
      std::fprintf(stderr,
                   "weave: tcp server on %s: the protocol factory %s%s; "
                   "the connection from %s is closed\n",
                   s.address.c_str(), why, what.c_str(), who.c_str());
      ::close(fd);
      continue;
    }
    spawn_connection(self->system(), s.reactor, fd, std::move(who), s.opts,
                     false, 0, std::move(proto));
  }
  if (!s.failure)
    arm(s); // more may wait: the readiness comes again at once
}

void pump(listener_actor* self) {
  if (self->state.factory) {
    serve(self);
    return;
  }
  auto& s = self->state;
  while (!s.failure && !s.accepts.empty()) {
    std::string who;
    int fd = accept_next(s, who);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        arm(s);
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
                                 std::move(who), s.opts, false, 0);
    rp.deliver(conn);
  }
}

caf::behavior listener(listener_actor* self, std::shared_ptr<tcp_reactor> r,
                       int fd, std::string address, uint16_t port,
                       tcp_options opts, tcp_protocol_factory factory) {
  auto& st = self->state;
  st.factory = std::move(factory);
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
  if (st.factory && !st.failure)
    arm(st);
  return {
    [self](accept_atom) {
      auto& s = self->state;
      auto rp = self->make_response_promise();
      if (s.failure) {
        rp.deliver(s.failure);
        return rp;
      }
      if (s.factory) {
        rp.deliver(make_error(errc::invalid_argument,
                              "accept on " + s.address
                                + ": a tcp server's connections go to its "
                                  "protocol factory"));
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

namespace {

tcp_listener listen_on(const char* who, runtime& rt, const std::string& host,
                       uint16_t port, tcp_options opts, int backlog,
                       tcp_protocol_factory factory) {
  internal::check_options(who, opts);
  if (backlog < 0)
    raise(make_error(errc::invalid_argument,
                     std::string{who} + ": backlog must not be negative"));
  auto addr = internal::parse_address(who, host, port);
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
                                  bound_text, bound_port, opts,
                                  std::move(factory));
  return caf::actor_cast<tcp_listener>(a);
}

} // namespace

tcp_listener spawn_tcp_listener(runtime& rt, const std::string& host,
                                uint16_t port, tcp_options opts,
                                int backlog) {
  return listen_on("spawn_tcp_listener", rt, host, port, opts, backlog, {});
}

tcp_listener spawn_tcp_server(runtime& rt, const std::string& host,
                              uint16_t port, tcp_protocol_factory factory,
                              tcp_options opts, int backlog) {
  if (!factory)
    raise(make_error(errc::invalid_argument,
                     "spawn_tcp_server: the protocol factory is empty"));
  return listen_on("spawn_tcp_server", rt, host, port, opts, backlog,
                   std::move(factory));
}

} // namespace weave::actors
