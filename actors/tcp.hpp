#pragma once

/// TCP as actors: `tcp_listener` accepts, `tcp_connection` reads and writes;
/// the C++ answer to asyncio's streams and `tokio::net`. (Code that only
/// reacts to bytes with bytes — an echo, a proxy, a parser — runs faster
/// inside the connection's actor as a `tcp_protocol`, tcp_protocol.hpp: no
/// message per read or write.) Messages (atoms from this header), each
/// answered through a response promise:
/// - connection: `connected` → the peer's address ("127.0.0.1:8080") once
///   the connect finished; `read_line` → one line without its "\n";
///   `read_frame` → one length-prefixed frame (a 4-byte big-endian length,
///   then that many bytes); `read_exact, n` → exactly `n` bytes;
///   `read_some` → what has arrived, 1 to `read_chunk` bytes; `read_into,
///   buf` (a `std::vector<char>`, not empty) → `buf` itself, resized to
///   what has arrived (1 to its size); `tcp_write, data` and `write_frame,
///   data` (a `std::string` or a `std::vector<char>`) → bytes taken,
///   answered once they fit in the bounded write buffer; `write_all, buf`
///   (a `std::vector<char>`) → `buf` itself, contents intact, answered once
///   the kernel took every byte (Tokio's `write_all(&buf)`);
///   `shutdown_write` → total bytes written, answered once the buffer is
///   flushed and `shutdown(SHUT_WR)` done (half-close: reads go on);
///   `tcp_stats` → `tcp_stats`; `tcp_close` (no answer).
/// - listener: `accept` → a `tcp_connection` for the next peer (pull: no
///   `accept` pending, no connection taken; the kernel's backlog fills);
///   `tcp_port` → the bound port; `tcp_close` (no answer).
/// Requests are served in the order they arrive, reads after reads and
/// writes after writes.
///
/// Copies: a write's bytes are sent from the string or vector moved into
/// the request (move it: `std::move(data)`), never copied into a buffer;
/// each read reply is one copy out of a read buffer kept between reads.
/// `read_into` and `write_all` carry the caller's vector there and back:
/// a caller that reuses one vector for every chunk allocates nothing, and
/// a `read_into` that finds nothing buffered `recv`s straight into it (no
/// copy at all). On an error the vector is not given back.
/// A request tries its `send` / `recv` at once: a ready socket is served
/// in the same turn, without waiting for the I/O thread.
///
/// Backpressure: a write is answered only once all its bytes are in the
/// write buffer (`tcp_options::write_buffer`: the unsent bytes of answered
/// writes, held in their own requests; a `write_all` only once the kernel
/// took them, its bytes never in the buffer), which never holds more than
/// that bound: a writer that waits for each answer (as `request(...).then`
/// does) is held back by a slow peer. Reads are pulled: bytes are taken
/// from the kernel only while a read is pending, into a read buffer of at
/// most `max_frame + 4` bytes, so a slow reader holds back its peer.
///
/// Threads: one weave-owned I/O thread per runtime (`weave-tcp`, epoll)
/// waits for readiness of every socket and tells the actor; the actor
/// then does the non-blocking `recv` / `send` / `accept` / `connect`
/// itself, so no call ever blocks a scheduler thread (nor CAF's multiplexer).
///
/// Where actors run: the actor a readiness wakes (the socket's), and the
/// actor its turn answers, and so on, may run their turns on the I/O
/// thread itself instead of waiting for a scheduler thread to wake up
/// (Tokio runs a task its I/O driver woke the same way): while the
/// machine has idle cores, one chain at a time (a turn that wakes two
/// actors sends the older to the scheduler, where a worker runs it in
/// parallel), at most `weave.tcp-inline-turns` turns per readiness
/// (default 8; then the chain goes on on the scheduler; 0 sends every
/// readiness to the scheduler; with a non-weave `scheduler.policy`, which
/// has no blocking detector to watch the thread, no turns run there), at
/// most 64 messages per turn. While other processes leave this one less
/// than one and a half cores, the thread gathers instead: it keeps up to
/// `tcp-inline-turns` woken actors and runs them in turn, the way asio's
/// single thread does, since a hand-off to a worker would wait for a core
/// there (`weave.tcp-gather`: `auto`, the default, reads the machine's load
/// every 100 ms; `always` and `never` fix it; a protocol's writer and
/// reader gathered there take turns 64 KiB at a time:
/// actors/internal/io_unit.hpp). So the handlers of actors that
/// talk to a connection may run on `weave-tcp`: like a scheduler thread,
/// it must not block (futures refuse to wait there), and the blocking
/// detector watches it (a report names "the TCP I/O thread";
/// `slow_handler_event::worker` is the number of scheduler workers; its
/// counts are `metrics_snapshot::tcp_io`; thread dumps list it with the
/// actor it runs). A handler that blocks there (a sleep, a `scoped_actor`'s
/// `receive`, which CAF does not refuse) holds no socket for long: once the
/// watchdog sees the same turn in two looks (every min(threshold / 2,
/// 50 ms)), a standby thread (`weave-tcp-standby`) polls the sockets and
/// sends their readiness to the scheduler until that turn ends, and hands
/// an actor the stuck handler made runnable (kept for this thread) to the
/// scheduler too, as a stuck worker's queue is stolen from. After
/// running turns the thread looks for readiness for `weave.spin` before it
/// sleeps, as an idle scheduler worker does.
///
/// Deadlines (`tcp_options`): a connect not finished within
/// `connect_timeout` fails with `timeout`; a read not answered within
/// `read_timeout` fails with `timeout` (the stream stays usable: nothing of
/// it was consumed); no byte in either direction for `idle_timeout` closes
/// the connection with `timeout`. Negative durations are refused at spawn
/// (`invalid_argument`); `timespan::max()` means "never". A CAF request
/// timeout is not a read deadline: the connection does not see that the
/// requester stopped waiting, so its read is still served later and
/// consumes its bytes; use `read_timeout` when nothing may be lost.
///
/// Errors: `io_error` naming the call, the peer address and the errno text
/// ("connect 10.0.0.1:9: Connection refused"); `timeout`; `closed` (peer
/// closed: a read at end of stream, "mid-frame" when part of a frame had
/// arrived; or the connection was closed). A frame or line longer than
/// `max_frame` fails with `io_error` and closes the connection. After an
/// error every later request gets the same error.
///
/// Shutdown: the runtime's shutdown (its first phase) closes every listener
/// and connection, answers their pending requests with `shut_down`, and
/// stops the I/O thread; a thread not stopped by the deadline is abandoned
/// and counted in the report. A connection also closes when its actor ends
/// (an exit message; or every handle dropped while no request of it is
/// pending: a pending request keeps it alive until answered, a deadline
/// does not, and an answered one is forgotten at once), and every listener
/// and connection actor ends at the runtime's shutdown, failed ones too.
/// Answered writes whose bytes are still in the write buffer keep the
/// connection alive until sent, as a closed socket's send buffer does; a
/// close that discards such bytes (`tcp_close`, an error, the shutdown)
/// resets the connection (RST), so the peer never takes a cut stream for
/// a complete one.
///
/// Thread-safety: actors; send them messages from anywhere.
///
///     auto srv = spawn_tcp_listener(rt, "127.0.0.1", 0);
///     auto conn = spawn_tcp_connect(rt, "127.0.0.1", port);
///     self->request(conn, 5s, write_atom::value, std::string{"hi\n"});

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "caf/atom.hpp"
#include "caf/meta/type_name.hpp"
#include "caf/replies_to.hpp"
#include "caf/timespan.hpp"
#include "caf/typed_actor.hpp"

#include "runtime/runtime.hpp"

namespace weave::actors {

using connected_atom = caf::atom_constant<caf::atom("connected")>;
using read_line_atom = caf::atom_constant<caf::atom("read_line")>;
using read_frame_atom = caf::atom_constant<caf::atom("read_frame")>;
using read_exact_atom = caf::atom_constant<caf::atom("read_exact")>;
using read_some_atom = caf::atom_constant<caf::atom("read_some")>;
using read_into_atom = caf::atom_constant<caf::atom("read_into")>;
using write_all_atom = caf::atom_constant<caf::atom("write_all")>;
using tcp_write_atom = caf::atom_constant<caf::atom("tcp_write")>;
using write_frame_atom = caf::atom_constant<caf::atom("writeframe")>;
using shutdown_write_atom = caf::atom_constant<caf::atom("shut_write")>;
using tcp_stats_atom = caf::atom_constant<caf::atom("tcp_stats")>;
using tcp_close_atom = caf::atom_constant<caf::atom("close")>;
using accept_atom = caf::atom_constant<caf::atom("accept")>;
using tcp_port_atom = caf::atom_constant<caf::atom("port")>;

/// The bytes in a frame's length prefix (big-endian).
constexpr size_t frame_prefix_size = 4;

/// Limits and deadlines of a connection (a listener passes its own to
/// every connection it accepts).
struct tcp_options {
  /// A connect must finish within this.
  caf::timespan connect_timeout = std::chrono::seconds{10};
  /// Each read must be answered within this (from its arrival).
  caf::timespan read_timeout = caf::timespan::max();
  /// No byte read or written for this long closes the connection.
  caf::timespan idle_timeout = caf::timespan::max();
  /// The write buffer's bound in bytes (at least 1).
  size_t write_buffer = 256 * 1024;
  /// The longest line, frame or `read_exact` (at least `read_chunk`).
  size_t max_frame = 1024 * 1024;
  /// The most bytes one `read_some` returns (at least 1).
  size_t read_chunk = 64 * 1024;
  /// The kernel's socket buffers (`SO_SNDBUF`, `SO_RCVBUF`) in bytes; 0
  /// leaves the kernel's default (which grows to megabytes on loopback).
  size_t socket_buffer = 0;
};

/// A connection's counters; `*_buffered` are bytes held now, `peak_*` the
/// most ever held.
struct tcp_stats {
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t read_buffered = 0;
  uint64_t write_buffered = 0;
  uint64_t peak_read_buffered = 0;
  uint64_t peak_write_buffered = 0;
  /// Writes that had to wait for room in the write buffer.
  uint64_t writes_pushed_back = 0;
  /// Reads that found too few bytes in the buffer and the socket and so
  /// waited for the socket's readiness (the others were served at once).
  uint64_t reads_waited = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tcp_stats& x) {
  return f(caf::meta::type_name("tcp_stats"), x.bytes_read, x.bytes_written,
           x.read_buffered, x.write_buffered, x.peak_read_buffered,
           x.peak_write_buffered, x.writes_pushed_back, x.reads_waited);
}

using tcp_connection = caf::typed_actor<
  caf::replies_to<connected_atom>::with<std::string>,
  caf::replies_to<read_line_atom>::with<std::string>,
  caf::replies_to<read_frame_atom>::with<std::string>,
  caf::replies_to<read_exact_atom, uint64_t>::with<std::string>,
  caf::replies_to<read_some_atom>::with<std::string>,
  caf::replies_to<read_into_atom, std::vector<char>>::with<std::vector<char>>,
  caf::replies_to<write_all_atom, std::vector<char>>::with<std::vector<char>>,
  caf::replies_to<tcp_write_atom, std::string>::with<uint64_t>,
  caf::replies_to<tcp_write_atom, std::vector<char>>::with<uint64_t>,
  caf::replies_to<write_frame_atom, std::string>::with<uint64_t>,
  caf::replies_to<write_frame_atom, std::vector<char>>::with<uint64_t>,
  caf::replies_to<shutdown_write_atom>::with<uint64_t>,
  caf::replies_to<tcp_stats_atom>::with<tcp_stats>,
  caf::reacts_to<tcp_close_atom>>;

using tcp_listener = caf::typed_actor<
  caf::replies_to<accept_atom>::with<tcp_connection>,
  caf::replies_to<tcp_port_atom>::with<uint16_t>, caf::reacts_to<tcp_close_atom>>;

/// Binds and listens on a numeric address ("127.0.0.1", "::1", "0.0.0.0")
/// and `port` (0: any free port; ask `port`). Throws `weave::exception`:
/// `invalid_argument` for a bad address or options, `io_error` (call,
/// address, errno text) if socket/bind/listen fail, `shut_down` once the
/// runtime's shutdown has begun.
tcp_listener spawn_tcp_listener(runtime& rt, const std::string& host,
                                uint16_t port, tcp_options opts = {},
                                int backlog = 128);

/// Starts connecting to a numeric address (resolve names first) and
/// returns the connection at once; requests wait for the connect, and fail
/// with its error if it fails. Throws like `spawn_tcp_listener`.
tcp_connection spawn_tcp_connect(runtime& rt, const std::string& host,
                                 uint16_t port, tcp_options opts = {});

} // namespace weave::actors
