#pragma once

// Internal: a TCP connection's state and its byte work, owned by the
// connection actor (tcp_connection.cpp), which alone touches it: no lock.
// `pump` does everything the socket allows now — moves queued writes into
// the bounded write buffer and sends, serves queued reads from the read
// buffer, taking bytes from the kernel only while a read is pending — and
// then asks the reactor for the readiness it still needs.

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include "caf/error.hpp"
#include "caf/response_promise.hpp"

#include "actors/internal/tcp_reactor.hpp"
#include "actors/tcp.hpp"
#include "runtime/error.hpp"
#include "runtime/internal/deadline.hpp"

namespace weave::actors::internal {

using weave::internal::steady_clock;

/// The most bytes one `recv` takes from the kernel.
inline constexpr size_t recv_step = 64 * 1024;

/// Timer tags: the idle timer, the connect timer; reads use 1, 2, ...
inline constexpr uint64_t idle_tag = 0;
inline constexpr uint64_t connect_tag = ~uint64_t{0};

enum class read_kind { line, frame, exact, some };

inline const char* call_name(read_kind k) {
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

inline void touch(conn_state& s) {
  s.last_active = steady_clock::now();
}

/// Does all the work the socket allows now, then arms the reactor.
void pump(conn_state& s);

} // namespace weave::actors::internal
