#pragma once

/// `thread_dump`: what every thread of a runtime is doing, taken without
/// stopping any of them (`runtime::dump()`), the way a JVM's thread dump or
/// tokio-console answers "which job has been running for an hour, which
/// actor holds a scheduler thread, which pool is saturated".
///
///     std::cerr << rt.dump();
///     // weave thread dump: 7 threads
///     //   weave-sched-0  scheduler    running   actor #42 (cruncher) for 1.2s
///     //   weave-pool_0   pool worker  running   "fetch user" (offload) ...
///     //       ... for 2.5s, deadline in 497ms, stop requested (cancelled)
///     //   weave-pool_1   pool worker  parked    for 3.1s
///
/// One entry per thread the runtime started: scheduler workers, CAF's clock,
/// pool workers, loops on their own thread, blockers, and other detached
/// actors (yours, CAF's printer). Each names its thread, its role, its state
/// (`running` a job or an actor; `spinning`: looking for work; `parked`:
/// asleep until work comes; `unknown`: a thread that does not say, such as
/// the clock or a detached actor of yours), what it runs (an actor on a
/// scheduler thread; a job with its label, see labeled.hpp, and its kind),
/// for how long, the job's deadline and whether a stop was requested for it.
///
/// How it is taken: each thread publishes its activity in a record of its
/// own as it changes (lock-free; a job start costs a read of the coarse
/// clock and a few stores), and the dump copies the records. Entries are each consistent,
/// but not taken at one instant: a thread may have moved on by the time the
/// next one is read. weave's own service threads (watchdog, deadline timer,
/// shutdown, signal reader) are listed with role `service`; threads you
/// start yourself are not listed.
///
/// Thread-safety: `runtime::dump()` may be called from any thread, also a
/// scheduler thread (it takes one short lock, never held by user code); the
/// result is a plain value.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "caf/timespan.hpp"

#include "runtime/error.hpp"

namespace weave {

struct thread_dump {
  /// What a thread is there for.
  enum class role : uint8_t {
    scheduler,
    clock,
    pool_worker,
    loop,
    blocker,
    /// A detached actor that is none of the above.
    actor,
    /// One of weave's own service threads: the blocking detector's watchdog
    /// (`weave-watchdog`), the deadline timer (`weave-timer`), the shutdown
    /// (`weave-shutdown`), the signal actor's reader (`weave-signals`), the
    /// middleman's I/O thread (`weave-middleman`, with process or remote
    /// pools).
    service,
  };

  /// What a thread is doing.
  enum class state : uint8_t { unknown, running, spinning, parked };

  struct thread {
    /// The thread's weave name (`weave-sched-0`, `io_3`, a loop's name).
    std::string name;
    enum role role = role::actor;
    enum state state = state::unknown;
    /// The actor a scheduler thread is running (0: none).
    uint64_t actor = 0;
    std::string actor_name;
    /// The running job's kind ("offload", "submit", "loop submit", "loop
    /// post"); empty while no job runs.
    std::string job_kind;
    /// The running job's label (empty: none).
    std::string label;
    /// How long it has been in its state or running its job (none: the
    /// thread does not say); read from a coarse clock, so up to one kernel
    /// tick (1-4 ms) short.
    std::optional<caf::timespan> elapsed;
    /// Time left until the running job's deadline (negative: passed; none:
    /// no deadline).
    std::optional<caf::timespan> deadline_in;
    /// The cause of a stop requested for the running job (`cancelled`,
    /// `timeout`, `shut_down`), or none.
    std::optional<errc> stop_requested;
  };

  /// When the dump was taken.
  std::chrono::steady_clock::time_point taken;
  /// By role, then name.
  std::vector<thread> threads;

  /// The entry of the thread called `name`, or null.
  const thread* find(const std::string& name) const noexcept;

  /// A readable listing, one line per thread (see above).
  std::string to_string() const;
};

const char* to_string(thread_dump::role r) noexcept;

const char* to_string(thread_dump::state s) noexcept;

std::ostream& operator<<(std::ostream& out, const thread_dump& dump);

} // namespace weave
