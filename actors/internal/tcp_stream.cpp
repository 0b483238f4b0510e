// A TCP connection's byte work: the bounded write buffer, framing, and
// pulling bytes from the kernel (see tcp_stream.hpp).
#include "actors/internal/tcp_stream.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "actors/internal/tcp_socket.hpp"

namespace weave::actors::internal {

namespace {

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

} // namespace

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

} // namespace weave::actors::internal
