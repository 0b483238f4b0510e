#pragma once

// Internal: the process-wide table of registered jobs (see
// registered_job.hpp), and the encoding that carries their arguments and
// results between processes.
//
// Every `registered_job` declares one `job_entry` here while the program's
// static objects are initialised; `WEAVE_JOB_IMPL` adds its implementation.
// Two processes compare their tables when a worker joins a pool: each entry
// is described as "name<TAB>signature<TAB>defined" (the signature is the
// mangled name of the function type, identical wherever the same
// declaration was compiled with the same compiler ABI).
//
// Arguments and results travel as bytes written by CAF's binary serializer:
// any type CAF can inspect (built-ins, standard containers, or a user type
// with an `inspect` overload) works, without `add_message_type`.
//
// Locking: the registry's lock guards its map only; no user code runs under
// it (lookups return pointers to entries that live as long as the program).

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <typeinfo>
#include <vector>

#include "caf/binary_deserializer.hpp"
#include "caf/binary_serializer.hpp"
#include "caf/error.hpp"

#include "runtime/error.hpp"

namespace weave::internal {

struct job_entry {
  /// The registered name (the first argument of `WEAVE_JOB`).
  std::string name;
  /// Mangled name of the function type, e.g. `FiiE` for `int(int)`.
  std::string signature;
  /// Retried once on another worker when its worker is lost.
  bool idempotent = false;
  /// Runs the local implementation on encoded arguments and returns the
  /// encoded result; throws what the job throws. Null until defined.
  std::vector<char> (*invoke)(const job_entry&, const std::vector<char>&)
    = nullptr;
  /// The `registered_job` this entry belongs to.
  const void* owner = nullptr;
};

/// `signature` in readable form (demangled), for error messages.
std::string readable_signature(const std::string& signature);

class job_registry {
public:
  static job_registry& instance();

  /// Adds `e` (at static initialisation). A second, different declaration
  /// of the same name is remembered as a conflict (see `conflict()`).
  void declare(job_entry* e);

  /// The entry named `name`, or null.
  const job_entry* find(const std::string& name) const;

  /// One line per declared job: "name\tsignature\t0|1" (1: defined here).
  std::vector<std::string> describe() const;

  /// Compares a worker's `describe()` with this process's declarations.
  /// Returns `registry_mismatch` naming the first job declared on both
  /// sides with different signatures; otherwise fills `runnable` with the
  /// jobs this process may send to that worker.
  caf::error check(const std::vector<std::string>& worker,
                   std::set<std::string>& runnable) const;

  /// `registry_mismatch` naming a job declared twice in this program with
  /// different signatures, or no error.
  caf::error conflict() const;

private:
  mutable std::mutex mtx_;
  std::map<std::string, job_entry*> entries_;
  std::string conflict_;
};

/// Encodes `xs...` with CAF's binary serializer.
template <class... Ts>
std::vector<char> encode(Ts&... xs) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  if (auto err = sink(xs...))
    raise(make_error(errc::job_failed,
                     "cannot encode a job's arguments or result: "
                       + render(err)));
  return buf;
}

/// Decodes every element of `t` from `buf`; an error if the bytes do not
/// hold exactly that.
template <class Tuple>
caf::error decode(const std::vector<char>& buf, Tuple& t) {
  caf::binary_deserializer source{nullptr, buf};
  auto err = std::apply([&](auto&... xs) { return source(xs...); }, t);
  if (!err && source.remaining() != 0)
    err = make_error(errc::registry_mismatch, "trailing bytes");
  return err;
}

} // namespace weave::internal
