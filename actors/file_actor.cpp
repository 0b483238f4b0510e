#include "actors/file_actor.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caf/event_based_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

#include "runtime/internal/runtime_access.hpp"
#include "runtime/offload.hpp"

namespace weave::actors {

namespace {

/// Bytes per read() call.
constexpr size_t read_chunk = 64 * 1024;

[[noreturn]] void fail(const char* call, const std::string& path) {
  auto code = errno;
  raise(make_error(errc::io_error, std::string{call} + " '" + path
                                     + "': " + std::strerror(code)));
}

/// Closes a file descriptor when it goes out of scope.
struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

/// Answers `rp` with the outcome of `fn` run on `pool`.
template <class Self, class T, class F>
void answer(Self* self, blocking_pool& pool, caf::typed_response_promise<T> rp,
            F fn) {
  offload(self, pool, std::move(fn))
    .then([rp](T value) mutable { rp.deliver(std::move(value)); },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
}

} // namespace

std::string read_file(const std::string& path) {
  fd_guard g{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (g.fd < 0)
    fail("open", path);
  std::string out;
  char buf[read_chunk];
  for (;;) {
    auto n = ::read(g.fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      fail("read", path);
    }
    if (n == 0)
      return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

uint64_t write_file(const std::string& path, const std::string& data,
                    bool append) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
  fd_guard g{::open(path.c_str(), flags, 0644)};
  if (g.fd < 0)
    fail("open", path);
  size_t done = 0;
  while (done < data.size()) {
    auto n = ::write(g.fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      fail("write", path);
    }
    done += static_cast<size_t>(n);
  }
  return done;
}

file_stat stat_file(const std::string& path) {
  struct ::stat st;
  if (::stat(path.c_str(), &st) != 0)
    fail("stat", path);
  file_stat out;
  out.size = static_cast<uint64_t>(st.st_size);
  out.is_directory = S_ISDIR(st.st_mode);
  out.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000
                 + st.st_mtim.tv_nsec;
  return out;
}

file_actor spawn_file_actor(runtime& rt, blocking_pool& pool) {
  // Shared, not borrowed: the actor may outlive the pool object (its
  // requests then fail with `shut_down`). system() throws `shut_down` after
  // shutdown.
  auto& sys = rt.system();
  auto shared = internal::runtime_access::share(pool);
  return sys.spawn(
    [shared](file_actor::pointer self) -> file_actor::behavior_type {
      auto& on = *shared;
      return {
        [self, shared, &on](read_atom, std::string& path) {
          auto rp = self->make_response_promise<std::string>();
          answer(self, on, rp, [path] { return read_file(path); });
          return rp;
        },
        [self, shared, &on](write_atom, std::string& path,
                              std::string& data) {
          auto rp = self->make_response_promise<uint64_t>();
          answer(self, on, rp, [path, data] {
            return write_file(path, data, false);
          });
          return rp;
        },
        [self, shared, &on](append_atom, std::string& path,
                              std::string& data) {
          auto rp = self->make_response_promise<uint64_t>();
          answer(self, on, rp, [path, data] {
            return write_file(path, data, true);
          });
          return rp;
        },
        [self, shared, &on](stat_atom, std::string& path) {
          auto rp = self->make_response_promise<file_stat>();
          answer(self, on, rp, [path] { return stat_file(path); });
          return rp;
        },
      };
    });
}

file_actor spawn_file_actor(runtime& rt) {
  return spawn_file_actor(rt, rt.default_pool());
}

} // namespace weave::actors
