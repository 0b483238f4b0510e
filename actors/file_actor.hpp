#pragma once

/// `file_actor`: a typed actor for whole-file I/O whose blocking calls run on
/// a blocking pool. The pattern every I/O actor in actors/ follows: a typed
/// interface, each request answered through a response promise once the
/// pool has done the blocking work, so the actor itself never blocks.
///
///     auto files = weave::actors::spawn_file_actor(rt);
///     self->request(files, 1s, read_atom::value, "/etc/hostname")
///       .then([](const std::string& text) { ... },
///             [](caf::error& err) { /* weave::io_error: open '...': ... */ });
///
/// Operations (atoms from this header):
/// - `read, path`            → the whole file as a string;
/// - `write, path, data`     → bytes written (creates or truncates, mode 0644);
/// - `append, path, data`    → bytes written (creates if missing);
/// - `stat, path`            → `file_stat` (size, directory?, mtime).
///
/// Failures come back as `weave::errc::io_error` errors whose message names
/// the call, the path and the errno text, e.g. "open '/nope': No such file
/// or directory". Requests are independent: several may be in flight on the
/// pool at once, so their replies can arrive in any order (like requests to
/// any actor). Writes to the same path from several requests race on the
/// file as they would with threads; order them in the caller if it matters.
///
/// Thread-safety: an actor; send it messages from anywhere.

#include <cstdint>
#include <string>

#include "caf/atom.hpp"
#include "caf/meta/type_name.hpp"
#include "caf/replies_to.hpp"
#include "caf/typed_actor.hpp"

#include "runtime/blocking_pool.hpp"
#include "runtime/runtime.hpp"

namespace weave::actors {

using read_atom = caf::atom_constant<caf::atom("read")>;
using write_atom = caf::atom_constant<caf::atom("write")>;
using append_atom = caf::atom_constant<caf::atom("append")>;
using stat_atom = caf::atom_constant<caf::atom("stat")>;

/// What `stat` reports.
struct file_stat {
  uint64_t size = 0;
  bool is_directory = false;
  /// Last modification, nanoseconds since the epoch.
  int64_t mtime_ns = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, file_stat& x) {
  return f(caf::meta::type_name("file_stat"), x.size, x.is_directory,
           x.mtime_ns);
}

using file_actor = caf::typed_actor<
  caf::replies_to<read_atom, std::string>::with<std::string>,
  caf::replies_to<write_atom, std::string, std::string>::with<uint64_t>,
  caf::replies_to<append_atom, std::string, std::string>::with<uint64_t>,
  caf::replies_to<stat_atom, std::string>::with<file_stat>>;

/// Spawns a file actor whose blocking calls run on `pool`. The actor may
/// outlive the `pool` object: once the pool is shut down (or destroyed), its
/// requests fail with `shut_down`. Throws `shut_down` once the runtime's
/// shutdown has begun.
file_actor spawn_file_actor(runtime& rt, blocking_pool& pool);

/// Spawns a file actor on the runtime's default pool.
file_actor spawn_file_actor(runtime& rt);

/// The blocking functions behind the actor, usable directly on a pool.
/// Each throws `weave::exception` (`io_error`) on failure.
std::string read_file(const std::string& path);
uint64_t write_file(const std::string& path, const std::string& data,
                    bool append);
file_stat stat_file(const std::string& path);

} // namespace weave::actors
