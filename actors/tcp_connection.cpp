// The connection actor: owns one non-blocking socket; the reactor's thread
// tells it when the socket is ready, and it does every send/recv itself.
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <vector>

#include "caf/actor_cast.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/response_promise.hpp"
#include "caf/spawn_options.hpp"
#include "caf/stateful_actor.hpp"

#include "actors/internal/tcp_socket.hpp"
#include "runtime/error.hpp"
#include "runtime/internal/deadline.hpp"

namespace weave::actors::internal {

namespace {

using weave::internal::steady_clock;

/// The most bytes one `recv` takes from the kernel.
constexpr size_t recv_step = 64 * 1024;

/// Timer tags: the idle timer, the connect timer; reads use 1, 2, ...
constexpr uint64_t idle_tag = 0;
constexpr uint64_t connect_tag = ~uint64_t{0};

enum class read_kind { line, frame, exact, some };

const char* call_name(read_kind k) {
  switch (k) {
    case read_kind::line: return "read_line from";
    case read_kind::frame: return "read_frame from";
    case read_kind::exact: return "read_exact from";
    default: return "read_some from";
  }
}

struct read_req {
  read_kind kind;
  uint64_t n;
  caf::response_promise rp;
  uint64_t tag;
};

struct write_req {
  std::string data;
  size_t off;
  caf::response_promise rp;
  uint64_t reply;
  bool pushed_back;
};

struct conn_state {
  static inline const char* name = "weave.tcp_connection";

  std::shared_ptr<tcp_reactor> reactor;
  uint64_t id = 0;
  int fd = -1;
  std::string peer;
  tcp_options opts;
  bool connecting = false;
  caf::error failure;
  std::string rbuf;
  size_t rpos = 0;
  bool eof = false;
  std::string wbuf;
  size_t wpos = 0;
  bool shut_requested = false;
  bool shut_done = false;
  std::deque<read_req> reads;
  std::deque<write_req> writes;
  std::vector<caf::response_promise> connect_waiters;
  std::vector<caf::response_promise> shut_waiters;
  uint32_t armed = 0;
  uint64_t next_tag = 1;
  tcp_stats stats;
  steady_clock::time_point last_active = steady_clock::now();

  size_t read_buffered() const { return rbuf.size() - rpos; }
  size_t write_buffered() const { return wbuf.size() - wpos; }
  size_t read_bound() const { return opts.max_frame + frame_prefix_size; }

  void close_fd() {
    if (fd < 0)
      return;
    if (id != 0)
      reactor->remove(id, fd);
    ::close(fd);
    fd = -1;
  }

  /// Ends the connection with `err`: every pending request gets it, and so
  /// does every later one.
  void fail(caf::error err) {
    if (failure)
      return;
    failure = err;
    close_fd();
    for (auto& rp : connect_waiters)
      rp.deliver(err);
    for (auto& r : reads)
      r.rp.deliver(err);
    for (auto& w : writes)
      w.rp.deliver(err);
    for (auto& rp : shut_waiters)
      rp.deliver(err);
    connect_waiters.clear();
    reads.clear();
    writes.clear();
    shut_waiters.clear();
    rbuf = std::string{};
    wbuf = std::string{};
    rpos = wpos = 0;
  }

  ~conn_state() {
    fail(make_error(errc::closed, "tcp connection to " + peer + " ended"));
  }
};

using conn_actor = caf::stateful_actor<conn_state>;

void touch(conn_state& s) {
  s.last_active = steady_clock::now();
}

/// Schedules a timer message after `d` unless `d` is "never".
void after(conn_actor* self, caf::timespan d, uint64_t tag) {
  auto at = weave::internal::deadline_after(d);
  if (at == steady_clock::time_point::max())
    return;
  self->delayed_send(self, d, tcp_timeout_atom::value, tag);
}

std::string in_ms(caf::timespan d) {
  using namespace std::chrono;
  return std::to_string(duration_cast<milliseconds>(d).count()) + "ms";
}

/// Moves queued writes into the buffer as far as room allows, answering
/// those now fully buffered; sends directly from a write while the buffer
/// is empty.
bool flush_writes(conn_state& s) {
  for (;;) {
    if (s.write_buffered() == 0 && !s.writes.empty()) {
      // Nothing buffered: send straight from the request, no copy.
      auto& w = s.writes.front();
      while (w.off < w.data.size()) {
        auto n = ::send(s.fd, w.data.data() + w.off, w.data.size() - w.off,
                        MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EINTR)
            continue;
          if (errno != EAGAIN && errno != EWOULDBLOCK) {
            s.fail(io_error("send to", s.peer, errno));
            return false;
          }
          break;
        }
        w.off += static_cast<size_t>(n);
        s.stats.bytes_written += static_cast<uint64_t>(n);
        touch(s);
      }
    }
    // Copy what fits into the buffer.
    while (!s.writes.empty()) {
      auto& w = s.writes.front();
      if (s.wpos > 0) {
        s.wbuf.erase(0, s.wpos);
        s.wpos = 0;
      }
      auto room = s.opts.write_buffer - s.wbuf.size();
      auto take = std::min(room, w.data.size() - w.off);
      s.wbuf.append(w.data, w.off, take);
      w.off += take;
      s.stats.peak_write_buffered = std::max<uint64_t>(
        s.stats.peak_write_buffered, s.wbuf.size());
      if (w.off < w.data.size()) {
        if (!w.pushed_back) {
          w.pushed_back = true;
          ++s.stats.writes_pushed_back;
        }
        break;
      }
      auto rp = std::move(w.rp);
      auto reply = w.reply;
      s.writes.pop_front();
      rp.deliver(reply);
    }
    if (s.write_buffered() == 0)
      return true;
    while (s.wpos < s.wbuf.size()) {
      auto n = ::send(s.fd, s.wbuf.data() + s.wpos, s.wbuf.size() - s.wpos,
                      MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          return true;
        s.fail(io_error("send to", s.peer, errno));
        return false;
      }
      s.wpos += static_cast<size_t>(n);
      s.stats.bytes_written += static_cast<uint64_t>(n);
      touch(s);
    }
    s.wbuf.clear();
    s.wpos = 0;
    if (s.writes.empty())
      return true;
  }
}

/// Answers `r` from the read buffer if it can; false if more bytes are
/// needed (or the connection failed: a frame over the limit).
bool serve(conn_state& s, read_req& r) {
  auto avail = s.read_buffered();
  const char* p = s.rbuf.data() + s.rpos;
  auto take = [&](size_t skip, size_t len) {
    std::string out;
    if (s.rpos == 0 && skip == 0 && len == s.rbuf.size()) {
      out = std::move(s.rbuf);
      s.rbuf = std::string{};
    } else {
      out.assign(p + skip, len);
      s.rpos += skip + len;
    }
    if (s.rpos == s.rbuf.size()) {
      s.rbuf.clear();
      s.rpos = 0;
    }
    r.rp.deliver(std::move(out));
    return true;
  };
  auto too_long = [&](size_t len) {
    s.fail(make_error(errc::io_error,
                      std::string{call_name(r.kind)} + " " + s.peer + ": "
                        + (r.kind == read_kind::line ? "line" : "frame")
                        + " of " + std::to_string(len)
                        + " bytes exceeds max_frame ("
                        + std::to_string(s.opts.max_frame) + ")"));
    return false;
  };
  switch (r.kind) {
    case read_kind::some:
      if (avail == 0)
        return false;
      return take(0, std::min(avail, s.opts.read_chunk));
    case read_kind::exact:
      return avail >= r.n && take(0, r.n);
    case read_kind::line: {
      auto* nl = static_cast<const char*>(std::memchr(p, '\n', avail));
      if (nl == nullptr)
        return avail > s.opts.max_frame ? too_long(avail) : false;
      auto len = static_cast<size_t>(nl - p);
      if (len > s.opts.max_frame)
        return too_long(len);
      take(0, len);
      ++s.rpos; // the '\n'
      if (s.rpos >= s.rbuf.size()) {
        s.rbuf.clear();
        s.rpos = 0;
      }
      return true;
    }
    case read_kind::frame: {
      if (avail < frame_prefix_size)
        return false;
      auto* b = reinterpret_cast<const unsigned char*>(p);
      uint64_t len = (uint64_t{b[0]} << 24) | (uint64_t{b[1]} << 16)
                     | (uint64_t{b[2]} << 8) | uint64_t{b[3]};
      if (len > s.opts.max_frame)
        return too_long(len);
      return avail >= frame_prefix_size + len
             && take(frame_prefix_size, len);
    }
  }
  return false;
}

/// Serves queued reads, taking bytes from the kernel only while a read is
/// pending and the read buffer has room.
bool serve_reads(conn_state& s) {
  while (!s.reads.empty()) {
    if (serve(s, s.reads.front())) {
      s.reads.pop_front();
      continue;
    }
    if (s.failure)
      return false;
    if (s.eof) {
      auto partial = s.read_buffered();
      for (auto& r : s.reads) {
        auto what = std::string{call_name(r.kind)} + " " + s.peer
                    + ": the peer closed the connection";
        if (partial > 0)
          what += " mid-frame (" + std::to_string(partial)
                  + " bytes of an unfinished frame)";
        r.rp.deliver(make_error(errc::closed, std::move(what)));
      }
      s.reads.clear();
      return true;
    }
    if (s.rpos > 0 && s.rpos * 2 >= s.rbuf.size()) {
      s.rbuf.erase(0, s.rpos);
      s.rpos = 0;
    }
    auto room = s.read_bound() - s.read_buffered();
    auto step = std::min(room, recv_step);
    auto old = s.rbuf.size();
    s.rbuf.resize(old + step);
    auto n = ::recv(s.fd, &s.rbuf[old], step, 0);
    s.rbuf.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return true;
      s.fail(io_error("recv from", s.peer, errno));
      return false;
    }
    if (n == 0) {
      s.eof = true;
      continue;
    }
    s.stats.bytes_read += static_cast<uint64_t>(n);
    s.stats.peak_read_buffered = std::max<uint64_t>(s.stats.peak_read_buffered,
                                                    s.read_buffered());
    touch(s);
  }
  return true;
}

/// Does all the work the socket allows now, then asks the reactor for the
/// readiness still needed.
void pump(conn_state& s) {
  if (s.failure || s.fd < 0)
    return;
  uint32_t want = 0;
  if (s.connecting) {
    want = EPOLLOUT;
  } else {
    if (!flush_writes(s))
      return;
    if (s.shut_requested && !s.shut_done && s.writes.empty()
        && s.write_buffered() == 0) {
      if (::shutdown(s.fd, SHUT_WR) != 0) {
        s.fail(io_error("shutdown(SHUT_WR) to", s.peer, errno));
        return;
      }
      s.shut_done = true;
      for (auto& rp : s.shut_waiters)
        rp.deliver(s.stats.bytes_written);
      s.shut_waiters.clear();
    }
    if (!serve_reads(s))
      return;
    if (!s.reads.empty() && !s.eof)
      want |= EPOLLIN;
    if (s.write_buffered() > 0 || !s.writes.empty())
      want |= EPOLLOUT;
  }
  if (want != 0 && (want & ~s.armed) != 0) {
    s.reactor->arm(s.id, s.fd, (want & EPOLLIN) != 0, (want & EPOLLOUT) != 0);
    s.armed = want;
  }
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
  touch(s);
  after(self, s.opts.idle_timeout, idle_tag);
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
      after(self, s.opts.idle_timeout - idle, idle_tag);
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
      return;
    }
  }
}

caf::response_promise read(conn_actor* self, read_kind kind, uint64_t n) {
  auto& s = self->state;
  auto rp = self->make_response_promise();
  if (s.failure) {
    rp.deliver(s.failure);
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
  pump(s);
  if (!s.reads.empty() && s.reads.back().tag == tag)
    after(self, s.opts.read_timeout, tag);
  return rp;
}

caf::response_promise write(conn_actor* self, std::string data,
                            bool framed) {
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
  if (framed) {
    if (data.size() > s.opts.max_frame) {
      rp.deliver(make_error(errc::invalid_argument,
                            "write_frame: " + std::to_string(data.size())
                              + " bytes exceeds max_frame ("
                              + std::to_string(s.opts.max_frame) + ")"));
      return rp;
    }
    auto len = static_cast<uint32_t>(data.size());
    char prefix[frame_prefix_size] = {
      static_cast<char>(len >> 24), static_cast<char>(len >> 16),
      static_cast<char>(len >> 8), static_cast<char>(len)};
    data.insert(0, prefix, frame_prefix_size);
  }
  auto size = data.size();
  s.writes.push_back(write_req{std::move(data), 0, rp, size, false});
  pump(s);
  return rp;
}

caf::behavior connection(conn_actor* self, std::shared_ptr<tcp_reactor> r,
                         int fd, std::string peer, tcp_options opts,
                         bool connecting, int connect_errno) {
  auto& st = self->state;
  st.reactor = std::move(r);
  st.fd = fd;
  st.peer = std::move(peer);
  st.opts = opts;
  st.connecting = connecting;
  if (connect_errno != 0) {
    st.fail(io_error("connect to", st.peer, connect_errno));
  } else {
    try {
      st.id = st.reactor->add(fd, caf::actor_cast<caf::actor>(self));
    } catch (const weave::exception& e) {
      st.fail(e.error());
    }
  }
  if (!st.failure) {
    if (connecting) {
      after(self, opts.connect_timeout, connect_tag);
      pump(st);
    } else {
      after(self, opts.idle_timeout, idle_tag);
    }
  }
  return {
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
      return write(self, std::move(data), false);
    },
    [self](write_frame_atom, std::string& data) {
      return write(self, std::move(data), true);
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
    [self](tcp_ready_atom, uint32_t) {
      auto& s = self->state;
      s.armed = 0;
      if (s.connecting && !s.failure)
        on_connected(self);
      pump(s);
    },
    [self](tcp_timeout_atom, uint64_t tag) { on_timer(self, tag); },
    [self](tcp_stop_atom) {
      self->state.fail(make_error(errc::shut_down,
                                  "tcp connection to " + self->state.peer
                                    + ": the runtime is shutting down"));
      self->quit(caf::exit_reason::user_shutdown);
    },
  };
}

} // namespace

tcp_connection spawn_connection(caf::actor_system& sys,
                                std::shared_ptr<tcp_reactor> reactor, int fd,
                                std::string peer, const tcp_options& opts,
                                bool connecting, int connect_errno) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  set_socket_buffer(fd, opts);
  auto a = sys.spawn<caf::hidden>(connection, std::move(reactor), fd,
                                  std::move(peer), opts, connecting,
                                  connect_errno);
  return caf::actor_cast<tcp_connection>(a);
}

} // namespace weave::actors::internal

namespace weave::actors {

tcp_connection spawn_tcp_connect(runtime& rt, const std::string& host,
                                 uint16_t port, tcp_options opts) {
  internal::check_options("spawn_tcp_connect", opts);
  auto addr = internal::parse_address("spawn_tcp_connect", host, port);
  auto& sys = rt.system();
  auto reactor = internal::tcp_reactor::of(rt);
  int fd = ::socket(addr.addr.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    raise(internal::io_error("socket for", addr.text, errno));
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
                                    opts, connecting, code);
}

} // namespace weave::actors
