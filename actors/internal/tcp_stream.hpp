#pragma once

// Internal: a TCP connection's state and its byte work, owned by the
// connection actor (tcp_connection.cpp), which alone touches it: no lock.
// `pump` does everything the socket allows now — answers the queued writes
// that fit in the bounded write buffer and sends (one `sendmsg` gathers
// several writes), serves queued reads from the read buffer, taking bytes
// from the kernel only while a read is pending — and then asks the reactor
// for the readiness it still needs. A read or write request calls `pump`
// at once, so a socket that is ready needs no round trip through the
// reactor's thread.
//
// No copies on the data path: a write's bytes stay in the string or vector
// moved into the request until the kernel took them (the write buffer is
// the queue of those requests, its size their unsent bytes); `recv` fills a
// read buffer that is kept between calls (grown, never zero-filled again),
// and a reply copies its bytes out once. `read_into` and `write_all` go
// further: the caller's vector travels in the request and back in the
// answer, so a caller that reuses it allocates nothing per chunk; a
// `read_into` that finds the read buffer empty `recv`s straight into it.

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "caf/error.hpp"
#include "caf/mailbox_element.hpp"
#include "caf/response_promise.hpp"

#include "actors/internal/tcp_reactor.hpp"
#include "actors/internal/tcp_timer.hpp"
#include "actors/tcp.hpp"
#include "actors/tcp_protocol.hpp"
#include "runtime/error.hpp"
#include "runtime/internal/deadline.hpp"

namespace weave::actors::internal {

using weave::internal::steady_clock;

using linger_opt = ::linger;

/// The most bytes one `recv` takes from the kernel.
inline constexpr size_t recv_step = 64 * 1024;

/// One turn of the actor starts no `sendmsg` once it sent this many bytes
/// (the rest goes after `EPOLLOUT`): a peer that reads as fast as it is
/// sent to must not hold a scheduler thread for long.
inline constexpr size_t send_per_turn = 1024 * 1024;

/// A protocol's producer on the TCP I/O thread while it gathers sends at
/// most this many bytes per turn (then the other ready sockets' turns).
inline constexpr size_t io_send_per_turn = recv_step;

/// The most writes one `sendmsg` gathers (two pieces each: prefix, data).
inline constexpr size_t gather_max = 32;

/// Timer tags: the idle timer, the connect timer; reads use 1, 2, ...
inline constexpr uint64_t idle_tag = 0;
inline constexpr uint64_t connect_tag = ~uint64_t{0};

enum class read_kind { line, frame, exact, some, into };

inline const char* call_name(read_kind k) {
  switch (k) {
    case read_kind::line: return "read_line from";
    case read_kind::frame: return "read_frame from";
    case read_kind::exact: return "read_exact from";
    case read_kind::into: return "read_into from";
    default: return "read_some from";
  }
}

struct read_req {
  read_kind kind;
  uint64_t n;
  caf::response_promise rp;
  uint64_t tag;
  /// Counted in `reads_waited` already.
  bool waited = false;
  /// `read_into`'s buffer: filled (up to its size) and given back.
  std::vector<char> into = {};
  /// Its `read_timeout` (cancelled when the read is answered).
  tcp_timer timer = {};
};

/// A write request and its bytes: an optional frame prefix, then the
/// string or the vector it came with (moved in, never copied).
struct write_req {
  std::string text;
  std::vector<char> bytes;
  bool is_text = true;
  char prefix[frame_prefix_size] = {};
  size_t prefix_len = 0;
  /// Bytes of prefix and data already sent.
  size_t off = 0;
  caf::response_promise rp;
  uint64_t reply = 0;
  /// Answered: its unsent bytes count as the write buffer's.
  bool answered = false;
  bool pushed_back = false;
  /// `write_all`: answered with its vector once the kernel took every
  /// byte (never counted in the write buffer: the bytes are the caller's).
  bool give_back = false;
  /// A protocol's write (tcp_protocol.hpp): no promise, never held back.
  bool internal = false;

  const char* data() const { return is_text ? text.data() : bytes.data(); }
  size_t size() const { return is_text ? text.size() : bytes.size(); }
  size_t total() const { return prefix_len + size(); }
  size_t unsent() const { return total() - off; }
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
  /// The read buffer: bytes [rpos, rend) of `rbuf` are unread; `rbuf`'s
  /// size is its capacity (kept between reads).
  std::vector<char> rbuf;
  size_t rpos = 0;
  size_t rend = 0;
  bool eof = false;
  /// Answered writes come first in `writes`: how many, and their unsent
  /// bytes (the write buffer's size).
  size_t answered = 0;
  size_t answered_unsent = 0;
  bool shut_requested = false;
  bool shut_done = false;
  std::deque<read_req> reads;
  std::deque<write_req> writes;
  tcp_timer connect_timer;
  tcp_timer idle_timer;
  /// The actor itself, weakly; and strongly while answered writes wait to
  /// be sent, so that dropping every handle still delivers what was
  /// promised (a socket's close does the same with its send buffer).
  caf::weak_actor_ptr me;
  caf::strong_actor_ptr linger;
  std::vector<caf::response_promise> connect_waiters;
  std::vector<caf::response_promise> shut_waiters;
  uint32_t armed = 0;
  /// A `sendmsg` failed with EAGAIN: none is tried until the next
  /// readiness (the reactor's `tcp_ready` clears it).
  bool send_blocked = false;
  uint64_t next_tag = 1;
  tcp_stats stats;
  steady_clock::time_point last_active = steady_clock::now();
  /// The unsent bytes of every queued write (answered or not).
  size_t unsent_total = 0;
  /// Bytes sent since `pump` was entered (see `send_per_turn`).
  size_t turn_sent = 0;
  /// The readiness that started this turn was armed for reading and said
  /// nothing of it: a protocol's `recv` is skipped once.
  bool nothing_to_read = false;
  /// This turn stopped at its share with these events (EPOLLIN, EPOLLOUT)
  /// still ready: on the I/O thread they come again without re-arming
  /// (`tcp_reactor::yield_ready`).
  uint32_t still_ready = 0;

  // A protocol drives the connection (tcp_protocol.hpp): set at spawn,
  // called only in this actor's turns.
  std::unique_ptr<tcp_protocol> proto;
  /// The actor (for `tcp_transport::self` and its own messages).
  caf::event_based_actor* actor = nullptr;
  tcp_transport transport{this};
  bool proto_started = false;
  bool reading_paused = false;
  bool want_writable = false;
  /// `close()`: no more reads; closed once the writes are sent.
  bool closing = false;
  /// The close was this side's (`close` done, `abort`): the protocol's
  /// `connection_lost` gets no error.
  bool clean_close = false;
  /// `abort()`: the close resets the connection whatever is unsent.
  bool abortive = false;
  /// Callbacks running (they take no other callback; `fail` defers the
  /// protocol's `connection_lost` to their end).
  int in_callback = 0;
  bool lost_pending = false;
  /// A `tcp_more` to this actor is queued (a producer's next turn, or the
  /// first turn of an accepted connection).
  bool more_pending = false;
  /// The actor itself, strongly, while its protocol runs.
  caf::strong_actor_ptr keep;
  /// What a readiness turn run without a message (`run_direct`) has as its
  /// current message: one like the `tcp_ready` it replaces.
  caf::mailbox_element_ptr ready_msg;
  /// The connection's behavior: a turn without a message runs only while
  /// it is the current one (no `await` pending, no `become`).
  const void* own_behavior = nullptr;

  size_t read_buffered() const { return rend - rpos; }
  size_t write_buffered() const { return answered_unsent; }
  size_t read_bound() const { return opts.max_frame + frame_prefix_size; }

  void close_fd() {
    if (fd < 0)
      return;
    if (id != 0)
      reactor->unwatch(fd);
    bool cut = abortive || answered_unsent > 0;
    for (auto& w : writes)
      cut = cut || (w.off > 0 && w.unsent() > 0);
    if (cut) {
      // Bytes of a stream partly sent or answered are lost: a reset, so
      // that the peer cannot take the stream for complete.
      linger_opt off{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof(off));
    }
    ::close(fd);
    fd = -1;
  }

  /// Ends the connection with `err`: every pending request gets it, and so
  /// does every later one.
  void fail(caf::error err) {
    if (failure) {
      if (lost_pending && in_callback == 0)
        finish_lost();
      return;
    }
    failure = err;
    close_fd();
    for (auto& rp : connect_waiters)
      rp.deliver(err);
    for (auto& r : reads)
      r.rp.deliver(err);
    for (auto& w : writes)
      if (!w.answered)
        w.rp.deliver(err);
    for (auto& rp : shut_waiters)
      rp.deliver(err);
    connect_waiters.clear();
    connect_timer.reset();
    idle_timer.reset();
    reads.clear();
    writes.clear();
    shut_waiters.clear();
    if (in_callback == 0) // else `data_received` may still read it
      rbuf = std::vector<char>{};
    rpos = rend = 0;
    answered = answered_unsent = 0;
    unsent_total = 0;
    if (proto) {
      lost_pending = true;
      if (in_callback > 0)
        return; // `finish_lost` once the callback returned
      finish_lost();
      return;
    }
    // Last: may drop the last reference (the scheduler still holds one
    // while the actor runs).
    auto self_ref = std::move(linger);
  }

  /// Tells the protocol that the connection ended, destroys it, and lets
  /// the actor go.
  void finish_lost();

  ~conn_state() {
    actor = nullptr; // ending already (see `finish_lost`)
    fail(make_error(errc::closed, "tcp connection to " + peer + " ended"));
    if (id != 0)
      reactor->forget(id);
  }
};

/// Records activity for the idle deadline (no clock read when there is
/// none: two per chunk on the data path otherwise).
inline void touch(conn_state& s) {
  if (s.opts.idle_timeout != caf::timespan::max())
    s.last_active = steady_clock::now();
}

/// Does all the work the socket allows now, then arms the reactor.
void pump(conn_state& s);

} // namespace weave::actors::internal
