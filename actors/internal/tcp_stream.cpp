// A TCP connection's byte work: the bounded write buffer (the queue of
// moved-in write requests), framing, and pulling bytes from the kernel
// (see tcp_stream.hpp).
#include "actors/internal/tcp_stream.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <utility>

#include "caf/actor_cast.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/execution_unit.hpp"
#include "caf/make_message.hpp"
#include "caf/message_id.hpp"
#include "caf/resumable.hpp"
#include "caf/send.hpp"

#include "actors/internal/io_unit.hpp"
#include "actors/internal/tcp_socket.hpp"

namespace weave::actors::internal {

namespace {

/// Drops sent writes from the front, answering any not answered yet.
void drop_sent(conn_state& s) {
  while (!s.writes.empty() && s.writes.front().unsent() == 0) {
    auto& w = s.writes.front();
    if (w.answered) {
      --s.answered;
      s.writes.pop_front();
      continue;
    }
    if (w.internal) { // a protocol's, sent before it was counted
      s.writes.pop_front();
      continue;
    }
    auto rp = std::move(w.rp);
    if (w.give_back) {
      auto bytes = std::move(w.bytes);
      s.writes.pop_front();
      rp.deliver(std::move(bytes));
      continue;
    }
    auto reply = w.reply;
    s.writes.pop_front();
    rp.deliver(reply);
  }
}

/// Answers, in order, the writes whose unsent bytes now fit in the write
/// buffer beside those of the writes answered before them.
void answer_fitting(conn_state& s) {
  drop_sent(s);
  for (auto i = s.answered; i < s.writes.size(); ++i) {
    auto& w = s.writes[i];
    if (w.give_back)
      return; // answered once sent; the writes after it wait for that
    auto left = w.unsent();
    if (w.internal) { // a protocol's: taken already, never held back
      w.answered = true;
      ++s.answered;
      s.answered_unsent += left;
      continue;
    }
    if (s.answered_unsent + left > s.opts.write_buffer) {
      if (!w.pushed_back) {
        w.pushed_back = true;
        ++s.stats.writes_pushed_back;
      }
      return;
    }
    w.answered = true;
    ++s.answered;
    s.answered_unsent += left;
    s.stats.peak_write_buffered = std::max<uint64_t>(
      s.stats.peak_write_buffered, s.answered_unsent);
    w.rp.deliver(w.reply);
  }
}

/// Takes `n` sent bytes off the front of the queue.
void consume(conn_state& s, size_t n) {
  s.stats.bytes_written += n;
  touch(s);
  for (auto& w : s.writes) {
    if (n == 0)
      break;
    auto k = std::min(n, w.unsent());
    w.off += k;
    if (w.answered)
      s.answered_unsent -= k;
    s.unsent_total -= k;
    n -= k;
  }
}

/// Sends queued writes (answered or not: the oldest first) until the
/// kernel takes no more; a write the kernel took whole is answered then,
/// the others once their unsent bytes fit in the buffer. Sending before
/// answering keeps a writer that the kernel keeps up with from filling
/// the buffer (and so from waiting for `EPOLLOUT`).
bool flush_writes(conn_state& s) {
  size_t sent = 0;
  for (;;) {
    drop_sent(s);
    if (s.writes.empty())
      return true;
    if (s.send_blocked) {
      // `sendmsg` failed with EAGAIN since the last readiness: wait for
      // `EPOLLOUT` instead of trying again (a write queued meanwhile is
      // answered if it fits, and sent after the readiness).
      answer_fitting(s);
      return true;
    }
    if (sent >= send_per_turn) {
      // Enough for one turn: the rest after `EPOLLOUT` (a peer that reads
      // as fast as we send must not hold a scheduler thread for long).
      answer_fitting(s);
      return true;
    }
    iovec iov[gather_max * 2];
    size_t cnt = 0;
    for (size_t i = 0; i < s.writes.size() && i < gather_max; ++i) {
      auto& w = s.writes[i];
      if (w.off < w.prefix_len)
        iov[cnt++] = {w.prefix + w.off, w.prefix_len - w.off};
      auto skip = w.off > w.prefix_len ? w.off - w.prefix_len : 0;
      if (skip < w.size())
        iov[cnt++] = {const_cast<char*>(w.data()) + skip, w.size() - skip};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = cnt;
    auto n = ::sendmsg(s.fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        s.send_blocked = true;
        answer_fitting(s);
        return true;
      }
      s.fail(io_error("send to", s.peer, errno));
      return false;
    }
    consume(s, static_cast<size_t>(n));
    sent += static_cast<size_t>(n);
    s.turn_sent += static_cast<size_t>(n);
  }
}

/// Answers `r` from the read buffer if it can; false if more bytes are
/// needed (or the connection failed: a frame over the limit).
bool serve(conn_state& s, read_req& r) {
  auto avail = s.read_buffered();
  const char* p = s.rbuf.data() + s.rpos;
  // Takes `n` bytes off the front of the read buffer.
  auto drop = [&](size_t n) {
    s.rpos += n;
    if (s.rpos == s.rend)
      s.rpos = s.rend = 0;
  };
  auto take = [&](size_t skip, size_t len) {
    std::string out(p + skip, len);
    drop(skip + len);
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
    case read_kind::into: {
      if (avail == 0)
        return false;
      auto len = std::min(avail, r.into.size());
      std::memcpy(r.into.data(), p, len);
      r.into.resize(len);
      drop(len);
      r.rp.deliver(std::move(r.into));
      return true;
    }
    case read_kind::line: {
      if (avail == 0)
        return false;
      auto* nl = static_cast<const char*>(std::memchr(p, '\n', avail));
      if (nl == nullptr)
        return avail > s.opts.max_frame ? too_long(avail) : false;
      auto len = static_cast<size_t>(nl - p);
      if (len > s.opts.max_frame)
        return too_long(len);
      std::string out(p, len);
      drop(len + 1); // and the '\n'
      r.rp.deliver(std::move(out));
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
      // This read cannot be served: it fails; the next may be (a
      // `read_some` behind a `read_line` gets the bytes that arrived).
      auto partial = s.read_buffered();
      auto what = std::string{call_name(s.reads.front().kind)} + " " + s.peer
                  + ": the peer closed the connection";
      if (partial > 0)
        what += " mid-frame (" + std::to_string(partial)
                + " bytes of an unfinished frame)";
      auto rp = std::move(s.reads.front().rp);
      s.reads.pop_front();
      rp.deliver(make_error(errc::closed, std::move(what)));
      continue;
    }
    // A `read_into` finding nothing buffered (else `serve` had answered)
    // takes the bytes straight into the caller's buffer: no copy.
    auto& front = s.reads.front();
    bool direct = front.kind == read_kind::into;
    char* dst = nullptr;
    size_t step = 0;
    if (direct) {
      dst = front.into.data();
      step = front.into.size();
    } else {
      auto room = s.read_bound() - s.read_buffered();
      step = std::min(room, recv_step);
      if (s.rbuf.size() - s.rend < step && s.rpos > 0) {
        // Move the unread bytes to the front (rarely many: a partial
        // frame).
        std::memmove(s.rbuf.data(), s.rbuf.data() + s.rpos,
                     s.read_buffered());
        s.rend -= s.rpos;
        s.rpos = 0;
      }
      if (s.rbuf.size() - s.rend < step)
        s.rbuf.resize(s.rend + step); // zero-fills only what is new
      dst = s.rbuf.data() + s.rend;
    }
    auto n = ::recv(s.fd, dst, step, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!front.waited) {
          front.waited = true;
          ++s.stats.reads_waited;
        }
        return true;
      }
      s.fail(io_error("recv from", s.peer, errno));
      return false;
    }
    if (n == 0) {
      s.eof = true;
      continue;
    }
    s.stats.bytes_read += static_cast<uint64_t>(n);
    touch(s);
    if (direct) {
      front.into.resize(static_cast<size_t>(n));
      auto rp = std::move(front.rp);
      auto into = std::move(front.into);
      s.reads.pop_front();
      rp.deliver(std::move(into));
      continue;
    }
    s.rend += static_cast<size_t>(n);
    s.stats.peak_read_buffered = std::max<uint64_t>(s.stats.peak_read_buffered,
                                                    s.read_buffered());
  }
  return true;
}

/// Runs one protocol callback: exceptions end the connection (`job_failed`
/// naming the callback); a `fail` inside it tells the protocol after it.
template <class F>
void call_protocol(conn_state& s, const char* what, F&& f) {
  caf::error thrown;
  ++s.in_callback;
  try {
    f(*s.proto, s.transport);
  } catch (const std::exception& e) {
    thrown = make_error(errc::job_failed, "tcp protocol for " + s.peer + ": "
                                            + what + " threw: " + e.what());
  } catch (...) {
    thrown = make_error(errc::job_failed, "tcp protocol for " + s.peer + ": "
                                            + what
                                            + " threw a non-std exception");
  }
  --s.in_callback;
  if (thrown)
    s.fail(std::move(thrown)); // also runs a deferred `finish_lost`
  else if (s.lost_pending && s.in_callback == 0)
    s.finish_lost();
}

bool running(const conn_state& s) {
  return s.proto != nullptr && !s.failure;
}

/// A next turn for the protocol, after the actors waiting for this
/// thread (`tcp_more`, at most one queued).
void go_on(conn_state& s) {
  if (s.more_pending)
    return;
  s.more_pending = true;
  caf::anon_send(caf::actor_cast<caf::actor>(s.actor), tcp_more_atom::value);
}

/// Sends `tcp_more` to the actor on its second run: queued where the
/// actor's turn runs now, its first run only sends it to the back of that
/// thread's queue (`resume_later`), so every job queued there meanwhile
/// runs before the producer's next turn.
class more_job final : public caf::resumable {
public:
  explicit more_job(caf::strong_actor_ptr who) : who_(std::move(who)) {
    // nop
  }

  subtype_t subtype() const override {
    return function_object;
  }

  resume_result resume(caf::execution_unit* ctx, size_t) override {
    if (!queued_) {
      queued_ = true;
      return resume_later;
    }
    if (auto who = std::move(who_))
      who->enqueue(nullptr, caf::make_message_id(),
                   caf::make_message(tcp_more_atom::value), ctx);
    return done;
  }

  void intrusive_ptr_add_ref_impl() override {
    refs_.fetch_add(1, std::memory_order_relaxed);
  }

  void intrusive_ptr_release_impl() override {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      delete this;
  }

private:
  caf::strong_actor_ptr who_;
  bool queued_ = false;
  std::atomic<int> refs_{1};
};

/// A producer's next turn, after this one and after the jobs waiting on
/// this thread (a worker's queue, or the I/O thread's): a job that goes to
/// the back of that queue and then sends the `tcp_more`. A message to
/// itself would be taken in the same turn of the actor, and a job at the
/// head of the queue would run before the others: either way a producer
/// whose peer keeps up would hold its thread for ever (the blocking
/// detector saw the first; a review test, one worker and an actor that
/// never got its turn, the second).
void yield_turn(conn_state& s) {
  auto ctx = s.actor != nullptr ? s.actor->context() : nullptr;
  if (ctx == nullptr) {
    go_on(s);
    return;
  }
  if (s.more_pending)
    return;
  s.more_pending = true;
  ctx->exec_later(new more_job{caf::strong_actor_ptr{s.actor->ctrl()}});
}

/// The most bytes one turn hands to `data_received` (then the readiness
/// comes again: other actors get the thread meanwhile).
inline constexpr size_t read_per_turn = 1024 * 1024;

/// A protocol's reads, its producer's writes and its close. False once the
/// connection failed or ended.
bool protocol_io(conn_state& s, uint32_t& want) {
  size_t got = 0;
  // On the I/O thread while it gathers, one `recv_step` per turn (then
  // the other ready sockets; more bytes make the level readiness fire at
  // once), as a producer there sends one (see below).
  bool gathering_here = io_unit::gathering_here();
  auto read_limit = gathering_here ? recv_step : read_per_turn;
  // A readiness that said "writable" only: the socket had nothing to read
  // when it was looked at (the re-arming catches what came since).
  bool nothing_to_read = std::exchange(s.nothing_to_read, false);
  while (!nothing_to_read && running(s) && !s.eof && !s.closing
         && !s.reading_paused && s.unsent_total <= s.opts.write_buffer) {
    if (got >= read_limit) {
      s.still_ready |= EPOLLIN; // the readiness fires again at once
      break;
    }
    if (s.rbuf.size() < recv_step)
      s.rbuf.resize(recv_step);
    auto n = ::recv(s.fd, s.rbuf.data(), recv_step, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      s.fail(io_error("recv from", s.peer, errno));
      return false;
    }
    if (n == 0) {
      s.eof = true;
      call_protocol(s, "eof_received",
                    [](tcp_protocol& p, tcp_transport& t) { p.eof_received(t); });
      break;
    }
    got += static_cast<size_t>(n);
    s.stats.bytes_read += static_cast<uint64_t>(n);
    touch(s);
    auto len = static_cast<size_t>(n);
    call_protocol(s, "data_received", [&](tcp_protocol& p, tcp_transport& t) {
      p.data_received(t, s.rbuf.data(), len);
    });
    if (len < recv_step)
      break; // A short read emptied the socket (as good as certain): wait
             // for the readiness instead of a `recv` that fails with
             // EAGAIN. Bytes that came meanwhile (an end of stream too)
             // make the level readiness fire at once.
  }
  if (!running(s))
    return false;
  if (!s.writes.empty() && !flush_writes(s))
    return false;
  // A producer: called while all it wrote went to the kernel. Once this
  // turn sent its share, the next comes after it ended (`yield_turn`);
  // while the I/O thread gathers, with the socket's write readiness (level,
  // so at once), which brings it to that thread (from a worker too) after
  // the other ready sockets' turns: a writer and its reader gathered there
  // take turns a chunk at a time (io_unit.hpp).
  bool gathering = s.reactor->gathering();
  auto turn_limit = gathering ? io_send_per_turn : send_per_turn;
  while (running(s) && s.want_writable && !s.closing && !s.shut_requested
         && s.writes.empty()) {
    if (s.turn_sent >= turn_limit) {
      if (gathering) {
        want |= EPOLLOUT;
        s.still_ready |= EPOLLOUT;
      } else {
        yield_turn(s);
      }
      break;
    }
    auto before = s.stats.bytes_written + s.unsent_total;
    call_protocol(s, "writable", [](tcp_protocol& p, tcp_transport& t) {
      p.writable(t);
    });
    if (running(s) && s.stats.bytes_written + s.unsent_total == before)
      s.want_writable = false; // nothing to write: off until asked again
    if (running(s) && !s.writes.empty() && !flush_writes(s))
      return false;
  }
  if (!running(s))
    return false;
  if (s.closing && s.writes.empty()) {
    s.clean_close = true;
    s.fail(make_error(errc::closed, "tcp connection to " + s.peer
                                      + ": closed by its protocol"));
    return false;
  }
  // Armed whenever reading may go on (also after a `resume_reading` in a
  // later callback of this turn): a level readiness fires at once for
  // bytes already there. (Edge-triggered registration, without the arming,
  // was tried: a readiness message per edge made the echo and the stream
  // slower, and a peer's replies could flood the mailbox.)
  if (!s.eof && !s.closing && !s.reading_paused
      && s.unsent_total <= s.opts.write_buffer)
    want |= EPOLLIN;
  return true;
}

/// The half-close, once asked for and every write is sent; false if it
/// failed.
bool shut_if_due(conn_state& s) {
  if (!s.shut_requested || s.shut_done || !s.writes.empty())
    return true;
  if (::shutdown(s.fd, SHUT_WR) != 0) {
    s.fail(io_error("shutdown(SHUT_WR) to", s.peer, errno));
    return false;
  }
  s.shut_done = true;
  for (auto& rp : s.shut_waiters)
    rp.deliver(s.stats.bytes_written);
  s.shut_waiters.clear();
  return true;
}

/// `pump` but for `linger`.
void pump_once(conn_state& s) {
  if (s.lost_pending && s.in_callback == 0)
    s.finish_lost();
  if (s.failure || s.fd < 0)
    return;
  uint32_t want = 0;
  if (s.connecting) {
    want = EPOLLOUT;
  } else {
    if (s.proto && !s.proto_started) {
      s.proto_started = true;
      call_protocol(s, "connected",
                    [](tcp_protocol& p, tcp_transport& t) { p.connected(t); });
      if (s.failure)
        return;
    }
    if (!flush_writes(s) || !shut_if_due(s))
      return;
    if (s.proto) {
      // A callback may have asked for the half-close.
      if (!protocol_io(s, want) || !shut_if_due(s))
        return;
      if (s.eof && s.shut_done && s.writes.empty()) {
        // Both directions ended: nothing more can pass.
        s.clean_close = true;
        s.fail(make_error(errc::closed, "tcp connection to " + s.peer
                                          + ": ended both ways"));
        return;
      }
    } else {
      if (!serve_reads(s))
        return;
      if (!s.reads.empty() && !s.eof)
        want |= EPOLLIN;
    }
    if (!s.writes.empty())
      want |= EPOLLOUT;
  }
  auto missing = want & ~s.armed;
  if (missing == 0)
    return;
  // What this turn left ready comes again on the I/O thread without an
  // `epoll_ctl` (a gathered stream's writer and reader: two per chunk
  // otherwise); the registration is armed for the rest only. `armed`:
  // a readiness will come for each of its events, the kernel's or kept.
  auto kept = missing & s.still_ready;
  if (kept != 0 && s.reactor->yield_ready(s.id, kept)) {
    s.armed |= kept;
    if ((missing & ~kept) == 0)
      return;
  } else {
    kept = 0;
  }
  // The registration becomes the rest of `want`, exactly (what it held
  // before and `want` does not is no longer armed).
  auto registered = want & ~kept;
  s.reactor->arm(s.id, s.fd, (registered & EPOLLIN) != 0,
                 (registered & EPOLLOUT) != 0);
  s.armed = want;
}

} // namespace

void pump(conn_state& s) {
  // Never re-entered: the transport calls only record, send, or queue a
  // `tcp_more` (`settle`).
  s.turn_sent = 0;
  s.still_ready = 0;
  pump_once(s);
  s.nothing_to_read = false; // this turn's readiness only
  // Answered writes still to send keep the actor (see `linger`).
  if (s.answered_unsent > 0 && !s.failure) {
    if (!s.linger)
      s.linger = s.me.lock();
  } else if (s.linger) {
    auto self_ref = std::move(s.linger);
  }
}

void conn_state::finish_lost() {
  lost_pending = false;
  if (auto p = std::move(proto)) {
    auto reason = clean_close ? caf::error{} : failure;
    ++in_callback;
    try {
      p->connection_lost(reason);
    } catch (const std::exception& e) {
      std::fprintf(stderr,
                   "weave: tcp protocol for %s: connection_lost threw: %s\n",
                   peer.c_str(), e.what());
    } catch (...) {
      std::fprintf(stderr,
                   "weave: tcp protocol for %s: connection_lost threw\n",
                   peer.c_str());
    }
    --in_callback;
    p.reset(); // its destructor, in this turn
    // The actor ends with its protocol: a `then` the protocol left pending
    // (capturing it, perhaps) never runs; later requests of a handle get
    // CAF's `request_receiver_down`.
    if (actor != nullptr)
      actor->quit(caf::exit_reason::normal);
  }
  if (in_callback == 0)
    rbuf = std::vector<char>{};
  // Last: may drop the last references (the scheduler still holds one
  // while the actor runs).
  auto keep_ref = std::move(keep);
  auto self_ref = std::move(linger);
}

} // namespace weave::actors::internal

// The transport: a protocol's handle on its connection's state.

namespace weave::actors {

using internal::running;
using internal::touch;
using internal::write_req;

namespace {

/// A transport call from outside the callbacks (a `then` of the actor):
/// the protocol is not told `connection_lost` (and destroyed) under its
/// caller, which may still use `this`; a `tcp_more` tells it in the next
/// turn (review finding: `close()` from a `then` destroyed the protocol
/// inside the call).
struct outside_call {
  internal::conn_state& s;
  bool outer;
  explicit outside_call(internal::conn_state& s)
    : s(s), outer(s.in_callback == 0) {
    if (outer)
      ++s.in_callback;
  }
  ~outside_call() {
    if (!outer)
      return;
    --s.in_callback;
    if (s.lost_pending)
      internal::go_on(s);
  }
};

} // namespace

bool tcp_transport::write(const char* data, size_t n) {
  auto& s = *s_;
  if (!running(s) || s.fd < 0 || s.closing || s.shut_requested)
    return false;
  size_t off = 0;
  if (s.writes.empty() && !s.send_blocked && !s.connecting) {
    // Straight from the caller's bytes: no copy for what the kernel takes.
    while (off < n) {
      auto k = ::send(s.fd, data + off, n - off, MSG_NOSIGNAL);
      if (k < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          s.send_blocked = true;
          break;
        }
        outside_call guard{s};
        s.fail(internal::io_error("send to", s.peer, errno));
        return false;
      }
      off += static_cast<size_t>(k);
      s.stats.bytes_written += static_cast<uint64_t>(k);
      s.turn_sent += static_cast<size_t>(k);
    }
    if (off > 0)
      touch(s);
  }
  if (off < n) {
    write_req w;
    w.text.assign(data + off, n - off);
    w.internal = true;
    auto left = w.unsent();
    if (s.answered == s.writes.size()) { // in the answered prefix
      w.answered = true;
      ++s.answered;
      s.answered_unsent += left;
    }
    s.unsent_total += left;
    s.stats.peak_write_buffered = std::max<uint64_t>(
      s.stats.peak_write_buffered, s.unsent_total);
    s.writes.push_back(std::move(w));
  }
  settle();
  return true;
}

size_t tcp_transport::write_buffered() const {
  return s_->unsent_total;
}

void tcp_transport::want_writable(bool on) {
  s_->want_writable = on;
  if (on)
    settle();
}

void tcp_transport::pause_reading() {
  s_->reading_paused = true;
}

void tcp_transport::resume_reading() {
  s_->reading_paused = false;
  settle();
}

void tcp_transport::shutdown_write() {
  if (!running(*s_))
    return;
  s_->shut_requested = true;
  settle();
}

void tcp_transport::close() {
  if (!running(*s_))
    return;
  s_->closing = true;
  s_->want_writable = false;
  settle();
}

void tcp_transport::abort() {
  auto& s = *s_;
  if (!running(s))
    return;
  s.clean_close = true;
  s.abortive = true;
  outside_call guard{s};
  s.fail(make_error(errc::closed, "tcp connection to " + s.peer
                                    + ": aborted by its protocol"));
}

const std::string& tcp_transport::peer() const {
  return s_->peer;
}

tcp_stats tcp_transport::stats() const {
  auto out = s_->stats;
  out.read_buffered = s_->read_buffered();
  out.write_buffered = s_->unsent_total;
  return out;
}

caf::event_based_actor* tcp_transport::self() const {
  return s_->actor;
}

void tcp_transport::settle() {
  // Outside the callbacks (a `then`): the work goes on in the actor's next
  // turn (`tcp_more`), not inside this call, where it would run
  // `data_received`, `writable` or `eof_received` in the middle of the
  // then's code (review 2: callbacks nested in a transport call).
  if (s_->in_callback == 0)
    internal::go_on(*s_);
}

} // namespace weave::actors
