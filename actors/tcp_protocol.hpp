#pragma once

/// TCP protocols: code that runs inside a connection's own actor, called
/// back as bytes arrive and as the socket takes more — asyncio's
/// `Protocol`/`Transport` pair, CAF's brokers, a handler-per-socket server
/// in asio. The request API of tcp.hpp costs two messages per read and per
/// write (the request, the answer); a protocol costs none: `data_received`
/// gets the bytes where the connection's `recv` put them, and `write` sends
/// from the caller's memory in the same turn. Use it for servers and
/// clients whose logic is "react to bytes with bytes" (echo, proxies,
/// parsers, request/response protocols); use the requests where another
/// actor drives the connection.
///
/// Callbacks (`tcp_protocol`), each in a turn of the connection's actor
/// (one at a time, never two at once, never under a weave lock; on a
/// scheduler thread or the TCP I/O thread: they must not block):
/// - `connected(t)`: once, first, when the connection is up (at once for an
///   accepted one, once the connect finished for `spawn_tcp_connect`).
/// - `data_received(t, data, n)`: bytes in arrival order; `data` is valid
///   only during the call (it is the connection's read buffer).
/// - `eof_received(t)`: the peer shut its writing side; by default
///   `t.close()` (sends what is buffered, then closes); a protocol that
///   overrides it and does not close keeps writing (half-close); once
///   this side's `shutdown_write` is done too, nothing more can pass and
///   the connection closes (`connection_lost` without an error).
/// - `writable(t)`: after `t.want_writable(true)`, called again and again
///   while everything written so far has gone to the kernel (the write
///   buffer is empty), so a producer that writes a chunk per call sends
///   from its own memory and never copies. A turn calls it until it sent
///   1 MiB (checked before each call, so a call may go past it), then the
///   next turn comes after the other actors waiting for that thread; while
///   the TCP I/O thread gathers (actors/tcp.hpp), until it sent 64 KiB,
///   and the next turn comes with the socket's write readiness, on that
///   thread, after the other ready sockets' turns. A call that
///   writes nothing turns it off (call `want_writable(true)` when there is
///   more).
/// - `connection_lost(reason)`: once, last, however the connection ended;
///   `reason` is empty (`!reason`) for a close this side asked for
///   (`close`, whose buffered bytes were all sent, or `abort`), else the
///   error a request would get (`io_error` for a reset or a failed
///   connect, `timeout`, `shut_down` at the runtime's shutdown, `job_failed`
///   when a callback threw). The protocol is destroyed right after it, in
///   the same turn, and the connection's actor ends: a `then` the protocol
///   left pending never runs (it may capture the protocol), and later
///   requests of a handle fail with CAF's `request_receiver_down`.
///
/// `tcp_transport` (what the callbacks get; also usable in any other turn
/// of the connection's actor, e.g. the `then` of a request sent with
/// `t.self()` — there what the call makes possible, reading, `writable`,
/// the close, happens in the actor's next turn, never inside the call;
/// never from another thread, never after `connection_lost`):
/// - `write(data, n)` / `write(view)` → true if taken: sends at once what
///   the kernel takes (no copy) and copies the rest into the write buffer;
///   false once the connection is closing or closed (nothing taken), or
///   when it failed during this call (a reset: what went out is lost with
///   the connection).
/// - `write_buffered()`: bytes taken but not yet sent.
/// - `want_writable(on)`, `pause_reading()`, `resume_reading()`,
///   `shutdown_write()` (FIN once the buffer is sent; reads go on),
///   `close()`, `abort()` (at once; buffered bytes dropped: the peer sees a
///   reset), `peer()`, `stats()`, `self()` (the connection's actor: to
///   `send`, `request` or `delayed_send` from; do not `quit` it or change
///   its behaviour — `close` it).
///
/// Backpressure, bounded memory: while more than
/// `tcp_options::write_buffer` bytes wait to be sent, the connection reads
/// nothing, so a protocol that answers what it reads (an echo) holds back
/// its peer when that peer reads slowly; `writable` is called only while
/// nothing waits, so a producer writes no faster than the socket drains.
/// A single `write` may take a chunk past the bound (it is never refused
/// for size): the buffer holds at most the bound plus what one callback
/// writes. Reads take at most 64 KiB per `recv` and 1 MiB per turn.
///
/// The connection stays alive while its protocol runs (no handle needed:
/// a server's connections live on their own) until it closes, fails, or
/// the runtime shuts down (`connection_lost(shut_down)`). The handle that
/// `spawn_tcp_connect` returns (or `spawn_tcp_server`'s connections) still
/// takes `tcp_write`, `write_frame`, `write_all`, `shutdown_write`,
/// `tcp_stats`, `connected` and `tcp_close` from other actors (their bytes
/// go out in order with the protocol's); its reads are refused
/// (`invalid_argument`: the bytes go to the protocol).
///
/// A callback that throws ends the connection (`job_failed`, the
/// callback's name and the exception's text; then `connection_lost`), and
/// so does a `then` of the connection's actor that throws. Once the
/// protocol called `close()`, other actors' write requests are refused
/// (`closed`), as its own writes are. A
/// factory of `spawn_tcp_server` that throws or returns null costs that
/// connection only (closed at once; the reason on stderr); the server goes
/// on.
///
///     struct echo : tcp_protocol {
///       void data_received(tcp_transport& t, const char* p, size_t n)
///         override { t.write(p, n); }
///     };
///     auto srv = spawn_tcp_server(rt, "127.0.0.1", 0,
///                                 [] { return std::make_unique<echo>(); });

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "caf/error.hpp"
#include "caf/fwd.hpp"

#include "actors/tcp.hpp"

namespace weave::actors {

namespace internal {
struct conn_state;
} // namespace internal

/// A connection as its protocol sees it (see the header's comment).
class tcp_transport {
public:
  explicit tcp_transport(internal::conn_state* s) : s_(s) {}
  tcp_transport(const tcp_transport&) = delete;
  tcp_transport& operator=(const tcp_transport&) = delete;

  bool write(const char* data, size_t n);
  bool write(std::string_view data) { return write(data.data(), data.size()); }
  size_t write_buffered() const;
  void want_writable(bool on);
  void pause_reading();
  void resume_reading();
  void shutdown_write();
  void close();
  void abort();
  const std::string& peer() const;
  tcp_stats stats() const;
  caf::event_based_actor* self() const;

private:
  /// Outside the protocol's callbacks (a `then` of the actor), has the
  /// work the call made possible done in the actor's next turn (never a
  /// callback inside the call).
  void settle();

  internal::conn_state* s_;
};

/// Code that runs inside a connection's actor (see the header's comment).
class tcp_protocol {
public:
  virtual ~tcp_protocol() = default;
  virtual void connected(tcp_transport&) {}
  virtual void data_received(tcp_transport& t, const char* data, size_t n)
    = 0;
  virtual void eof_received(tcp_transport& t) { t.close(); }
  virtual void writable(tcp_transport&) {}
  virtual void connection_lost(const caf::error&) {}
};

using tcp_protocol_factory = std::function<std::unique_ptr<tcp_protocol>()>;

/// `spawn_tcp_connect` with a protocol driving the connection; throws like
/// it, and `invalid_argument` for a null protocol.
tcp_connection spawn_tcp_connect(runtime& rt, const std::string& host,
                                 uint16_t port,
                                 std::unique_ptr<tcp_protocol> protocol,
                                 tcp_options opts = {});

/// A listener whose every accepted connection is driven by a protocol made
/// by `factory` (called in the listener's turn, once per connection). Its
/// `accept` requests are refused (`invalid_argument`); `tcp_port` and
/// `tcp_close` work as for `spawn_tcp_listener`. Throws like it, and
/// `invalid_argument` for an empty factory.
tcp_listener spawn_tcp_server(runtime& rt, const std::string& host,
                              uint16_t port, tcp_protocol_factory factory,
                              tcp_options opts = {}, int backlog = 128);

} // namespace weave::actors
