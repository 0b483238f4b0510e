// The connection actor: owns one non-blocking socket; the reactor's thread
// tells it when the socket is ready, and it does every send/recv itself.
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <exception>
#include <string>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <vector>

#include "caf/actor_cast.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/mailbox_element.hpp"
#include "caf/response_promise.hpp"
#include "caf/send.hpp"
#include "caf/spawn_options.hpp"
#include "caf/stateful_actor.hpp"

#include "actors/internal/tcp_socket.hpp"
#include "actors/internal/tcp_stop.hpp"
#include "actors/internal/tcp_stream.hpp"
#include "runtime/error.hpp"
#include "runtime/internal/deadline.hpp"

namespace weave::actors::internal {

namespace {

using conn_actor = caf::stateful_actor<conn_state>;

/// A `(tcp_timeout_atom, tag)` to `self` after `d` unless `d` is "never",
/// holding `self` weakly (see tcp_timer.hpp).
tcp_timer after(conn_actor* self, caf::timespan d, uint64_t tag) {
  return tcp_timer::start(
    self->state.reactor->timer(),
    caf::actor_cast<caf::weak_actor_ptr>(caf::actor_cast<caf::actor>(self)),
    d, tag);
}

std::string in_ms(caf::timespan d) {
  using namespace std::chrono;
  return std::to_string(duration_cast<milliseconds>(d).count()) + "ms";
}

/// The connect finished (or failed): checks `SO_ERROR`.
void on_connected(conn_actor* self) {
  auto& s = self->state;
  int code = 0;
  socklen_t len = sizeof(code);
  if (::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &code, &len) != 0)
    code = errno;
  if (code == EINPROGRESS || code == EALREADY)
    return; // spurious
  if (code != 0) {
    s.fail(io_error("connect to", s.peer, code));
    return;
  }
  s.connecting = false;
  s.connect_timer.reset();
  touch(s);
  s.idle_timer = after(self, s.opts.idle_timeout, idle_tag);
  for (auto& rp : s.connect_waiters)
    rp.deliver(s.peer);
  s.connect_waiters.clear();
}

void on_timer(conn_actor* self, uint64_t tag) {
  auto& s = self->state;
  if (s.failure)
    return;
  if (tag == connect_tag) {
    if (s.connecting)
      s.fail(make_error(errc::timeout, "connect to " + s.peer
                                         + ": no answer within "
                                         + in_ms(s.opts.connect_timeout)));
    return;
  }
  if (tag == idle_tag) {
    auto idle = steady_clock::now() - s.last_active;
    if (idle >= s.opts.idle_timeout)
      s.fail(make_error(errc::timeout, "tcp connection to " + s.peer
                                         + ": idle (no byte read or "
                                           "written) for "
                                         + in_ms(s.opts.idle_timeout)));
    else
      s.idle_timer = after(self, s.opts.idle_timeout - idle, idle_tag);
    return;
  }
  for (auto i = s.reads.begin(); i != s.reads.end(); ++i) {
    if (i->tag == tag) {
      auto rp = std::move(i->rp);
      auto kind = i->kind;
      s.reads.erase(i);
      rp.deliver(make_error(errc::timeout,
                            std::string{call_name(kind)} + " " + s.peer
                              + ": no data within "
                              + in_ms(s.opts.read_timeout)));
      // The reads behind it may be served from what is buffered (no
      // readiness will come for bytes already out of the kernel).
      pump(s);
      return;
    }
  }
}

caf::response_promise read(conn_actor* self, read_kind kind, uint64_t n,
                           std::vector<char>* into = nullptr) {
  auto& s = self->state;
  auto rp = self->make_response_promise();
  if (s.failure) {
    rp.deliver(s.failure);
    return rp;
  }
  if (s.proto) {
    rp.deliver(make_error(errc::invalid_argument,
                          std::string{call_name(kind)} + " " + s.peer
                            + ": the connection's bytes go to its "
                              "tcp_protocol"));
    return rp;
  }
  if (kind == read_kind::into && into->empty()) {
    rp.deliver(make_error(errc::invalid_argument,
                          "read_into: an empty buffer (its size is the most "
                          "bytes to read)"));
    return rp;
  }
  if (kind == read_kind::exact && n > s.opts.max_frame) {
    rp.deliver(make_error(errc::invalid_argument,
                          "read_exact: " + std::to_string(n)
                            + " bytes exceeds max_frame ("
                            + std::to_string(s.opts.max_frame) + ")"));
    return rp;
  }
  auto tag = s.next_tag++;
  s.reads.push_back(read_req{kind, n, rp, tag});
  if (into != nullptr)
    s.reads.back().into = std::move(*into);
  pump(s);
  if (!s.reads.empty() && s.reads.back().tag == tag)
    s.reads.back().timer = after(self, s.opts.read_timeout, tag);
  return rp;
}

/// Queues a write of `w`'s bytes (moved in, never copied), with a length
/// prefix if `framed`.
caf::response_promise write(conn_actor* self, write_req w, bool framed) {
  auto& s = self->state;
  auto rp = self->make_response_promise();
  if (s.failure) {
    rp.deliver(s.failure);
    return rp;
  }
  if (s.shut_requested) {
    rp.deliver(make_error(errc::closed, "write to " + s.peer
                                          + ": after shutdown_write"));
    return rp;
  }
  if (s.closing) { // the protocol's `close()`: refused like its own writes
    rp.deliver(make_error(errc::closed, "write to " + s.peer
                                          + ": its protocol is closing it"));
    return rp;
  }
  if (framed) {
    if (w.size() > s.opts.max_frame) {
      rp.deliver(make_error(errc::invalid_argument,
                            "write_frame: " + std::to_string(w.size())
                              + " bytes exceeds max_frame ("
                              + std::to_string(s.opts.max_frame) + ")"));
      return rp;
    }
    auto len = static_cast<uint32_t>(w.size());
    w.prefix[0] = static_cast<char>(len >> 24);
    w.prefix[1] = static_cast<char>(len >> 16);
    w.prefix[2] = static_cast<char>(len >> 8);
    w.prefix[3] = static_cast<char>(len);
    w.prefix_len = frame_prefix_size;
  }
  w.reply = w.total();
  w.rp = rp;
  s.unsent_total += w.total();
  s.writes.push_back(std::move(w));
  pump(s);
  return rp;
}

write_req bytes_of(std::string& data) {
  write_req w;
  w.text = std::move(data);
  return w;
}

write_req bytes_of(std::vector<char>& data, bool give_back = false) {
  write_req w;
  w.bytes = std::move(data);
  w.is_text = false;
  w.give_back = give_back;
  return w;
}

/// Ends the connection for an exception that left a turn: `job_failed`
/// with `where` and the exception's text.
caf::error turn_threw(conn_state& s, const std::exception_ptr& x,
                      const std::string& where) {
  std::string what;
  try {
    std::rethrow_exception(x);
  } catch (const std::exception& e) {
    what = std::string{"threw: "} + e.what();
  } catch (...) {
    what = "threw a non-std exception";
  }
  auto err = make_error(errc::job_failed, where + what);
  s.fail(err);
  return err;
}

/// The socket is ready (`events`, as `epoll_wait` said).
void on_ready(conn_actor* self, uint32_t events) {
  auto& s = self->state;
  s.nothing_to_read
    = (s.armed & EPOLLIN) != 0
      && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0;
  if ((events & tcp_reactor::again_event) != 0)
    s.armed &= ~events; // kept by `yield_ready`: the registration stands
  else
    s.armed = 0; // one-shot: the kernel disarmed the registration
  s.send_blocked = false;
  if (s.connecting && !s.failure)
    on_connected(self);
  pump(s);
}

/// `on_ready` run by the I/O thread without a message (io_unit.hpp,
/// `run_direct`): the turn sees a message like the one it replaces (from
/// nobody, not a request) as its current one.
void ready_turn(caf::scheduled_actor* p, uint32_t events) noexcept {
  auto self = static_cast<conn_actor*>(p);
  if (self->current_behavior().as_behavior_impl().get()
        != self->state.own_behavior
      || !self->get_normal_queue().cache().empty()
      || !self->get_urgent_queue().cache().empty()) {
    // The actor waits for a response (a protocol's `request(...).await`:
    // CAF takes nothing else until it came), another behavior took over,
    // or messages skipped during such a wait are still in the mailbox's
    // cache (CAF puts them back in line when it handles the next message,
    // and a turn without a message would leave them there): the readiness
    // is a message, handled by CAF's rules in the `resume` that
    // `run_direct` calls for the messages that came in this turn.
    self->enqueue(nullptr, caf::make_message_id(),
                  caf::make_message(tcp_ready_atom::value, events),
                  self->context());
    return;
  }
  self->current_mailbox_element(self->state.ready_msg.get());
  try {
    on_ready(self, events);
  } catch (...) {
    self->quit(turn_threw(self->state, std::current_exception(),
                          "tcp connection to " + self->state.peer
                            + ": a turn "));
  }
  self->current_mailbox_element(nullptr);
}

/// A protocol on its way into the actor (spawn arguments are copied).
using protocol_box = std::shared_ptr<std::unique_ptr<tcp_protocol>>;

caf::behavior connection(conn_actor* self, std::shared_ptr<tcp_reactor> r,
                         int fd, std::string peer, tcp_options opts,
                         bool connecting, int connect_errno,
                         protocol_box box) {
  auto& st = self->state;
  st.actor = self;
  bool driven = box && *box;
  if (driven) {
    // A `then` of the protocol that throws ends the connection like a
    // callback that throws (`job_failed` with the text), not as the
    // state's destructor's "ended" (review 2).
    self->set_exception_handler(
      [](caf::scheduled_actor* p, std::exception_ptr& x) -> caf::error {
        auto& s = static_cast<conn_actor*>(p)->state;
        return turn_threw(s, x, "tcp protocol for " + s.peer
                                  + ": a then of its actor ");
      });
    st.proto = std::move(*box);
    // Alive while the protocol runs; its first turn (`connected`, or the
    // `connection_lost` of a failure below) comes with `tcp_more`.
    st.keep = caf::actor_cast<caf::strong_actor_ptr>(self);
    ++st.in_callback; // a failure here tells the protocol in that turn
    st.more_pending = true;
    caf::anon_send(self, tcp_more_atom::value);
  }
  st.reactor = std::move(r);
  st.fd = fd;
  st.peer = std::move(peer);
  st.opts = opts;
  st.connecting = connecting;
  // Listed first, failed or not: the runtime's shutdown stops every
  // listed actor, also one that failed before it.
  st.me = caf::actor_cast<caf::weak_actor_ptr>(caf::actor_cast<caf::actor>(self));
  try {
    st.ready_msg = caf::make_mailbox_element(nullptr, caf::make_message_id(),
                                             {}, tcp_ready_atom::value,
                                             uint32_t{0});
    st.id = st.reactor->add(fd, caf::actor_cast<caf::actor>(self),
                            ready_turn);
  } catch (const weave::exception& e) {
    // Unlisted (the shutdown began, or epoll refused the socket):
    // nothing would stop it later, so it stops itself, after answering
    // what was sent to it before with the error.
    st.fail(e.error());
    caf::anon_send(self, tcp_stop_atom::value);
  }
  if (!st.failure && connect_errno != 0)
    st.fail(io_error("connect to", st.peer, connect_errno));
  if (!st.failure) {
    if (connecting) {
      st.connect_timer = after(self, opts.connect_timeout, connect_tag);
      if (!st.proto)
        pump(st); // a protocol's connection arms in its first turn
    } else {
      st.idle_timer = after(self, opts.idle_timeout, idle_tag);
    }
  }
  if (driven)
    --st.in_callback;
  caf::behavior own{
    [self](connected_atom) {
      auto& s = self->state;
      auto rp = self->make_response_promise();
      if (s.failure)
        rp.deliver(s.failure);
      else if (s.connecting)
        s.connect_waiters.push_back(rp);
      else
        rp.deliver(s.peer);
      return rp;
    },
    [self](read_line_atom) { return read(self, read_kind::line, 0); },
    [self](read_frame_atom) { return read(self, read_kind::frame, 0); },
    [self](read_exact_atom, uint64_t n) {
      return read(self, read_kind::exact, n);
    },
    [self](read_some_atom) { return read(self, read_kind::some, 0); },
    [self](tcp_write_atom, std::string& data) {
      return write(self, bytes_of(data), false);
    },
    [self](tcp_write_atom, std::vector<char>& data) {
      return write(self, bytes_of(data), false);
    },
    [self](read_into_atom, std::vector<char>& buf) {
      return read(self, read_kind::into, 0, &buf);
    },
    [self](write_all_atom, std::vector<char>& data) {
      return write(self, bytes_of(data, true), false);
    },
    [self](write_frame_atom, std::string& data) {
      return write(self, bytes_of(data), true);
    },
    [self](write_frame_atom, std::vector<char>& data) {
      return write(self, bytes_of(data), true);
    },
    [self](shutdown_write_atom) {
      auto& s = self->state;
      auto rp = self->make_response_promise();
      if (s.failure) {
        rp.deliver(s.failure);
      } else if (s.shut_done) {
        rp.deliver(s.stats.bytes_written);
      } else {
        s.shut_requested = true;
        s.shut_waiters.push_back(rp);
        pump(s);
      }
      return rp;
    },
    [self](tcp_stats_atom) {
      auto& s = self->state;
      auto out = s.stats;
      out.read_buffered = s.read_buffered();
      out.write_buffered = s.write_buffered();
      return out;
    },
    [self](tcp_close_atom) {
      auto& s = self->state;
      s.fail(make_error(errc::closed, "tcp connection to " + s.peer
                                        + ": closed by this side"));
    },
    [self](tcp_ready_atom, uint32_t events) { on_ready(self, events); },
    [self](tcp_timeout_atom, uint64_t tag) { on_timer(self, tag); },
    [self](tcp_more_atom) {
      self->state.more_pending = false;
      pump(self->state);
    },
    [self](tcp_stop_atom) {
      stop_for_shutdown(self, "tcp connection to " + self->state.peer);
    },
  };
  // What a turn without a message checks first (`ready_turn`).
  st.own_behavior = own.as_behavior_impl().get();
  return own;
}

} // namespace

tcp_connection spawn_connection(caf::actor_system& sys,
                                std::shared_ptr<tcp_reactor> reactor, int fd,
                                std::string peer, const tcp_options& opts,
                                bool connecting, int connect_errno,
                                std::unique_ptr<tcp_protocol> protocol) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  set_socket_buffer(fd, opts);
  protocol_box box;
  if (protocol)
    box = std::make_shared<std::unique_ptr<tcp_protocol>>(std::move(protocol));
  auto a = sys.spawn<caf::hidden>(connection, std::move(reactor), fd,
                                  std::move(peer), opts, connecting,
                                  connect_errno, std::move(box));
  return caf::actor_cast<tcp_connection>(a);
}

} // namespace weave::actors::internal

namespace weave::actors {

namespace {

tcp_connection connect_to(runtime& rt, const std::string& host, uint16_t port,
                          tcp_options opts,
                          std::unique_ptr<tcp_protocol> protocol) {
  internal::check_options("spawn_tcp_connect", opts);
  auto addr = internal::parse_address("spawn_tcp_connect", host, port);
  auto& sys = rt.system();
  auto reactor = internal::tcp_reactor::of(rt);
  int fd = internal::open_stream_socket(addr);
  internal::set_socket_buffer(fd, opts);
  bool connecting = false;
  int code = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr.addr), addr.len) != 0) {
    if (errno == EINPROGRESS)
      connecting = true;
    else
      code = errno;
  }
  return internal::spawn_connection(sys, std::move(reactor), fd, addr.text,
                                    opts, connecting, code,
                                    std::move(protocol));
}

} // namespace

tcp_connection spawn_tcp_connect(runtime& rt, const std::string& host,
                                 uint16_t port, tcp_options opts) {
  return connect_to(rt, host, port, opts, nullptr);
}

tcp_connection spawn_tcp_connect(runtime& rt, const std::string& host,
                                 uint16_t port,
                                 std::unique_ptr<tcp_protocol> protocol,
                                 tcp_options opts) {
  if (!protocol)
    raise(make_error(errc::invalid_argument,
                     "spawn_tcp_connect: the protocol is null"));
  return connect_to(rt, host, port, opts, std::move(protocol));
}

} // namespace weave::actors
