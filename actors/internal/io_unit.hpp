#pragma once

// Internal: the TCP I/O thread as a CAF execution unit, so that the actor a
// readiness wakes, and the actors its turn wakes in turn, can run on that
// thread instead of waiting for a scheduler worker to wake up.
//
// Why: a readiness used to be a message to the socket's actor on CAF's
// scheduler, whose answer went to the user's actor, whose next request went
// back: every hop from the I/O thread to a parked worker is a wake-up, the
// largest single cost of a small round trip (bench/README.md, TCP). Tokio
// runs a task woken by its I/O driver on the thread that polled it (the
// "LIFO slot"); CAF's middleman runs its brokers on its multiplexer thread.
//
// How: `deliver` enqueues a message with this unit as the sender's context,
// so an actor it makes runnable comes to `exec_later` here instead of to the
// scheduler, into the unit's queue of kept jobs. `run_chain` runs the kept
// jobs in order, each turn at most `turn_messages` messages, at most `turns`
// turns per call (then the reactor looks at its sockets again). With
// `turns == 0` nothing runs here: every readiness goes to the scheduler, as
// a message from outside.
//
// Without a message. A readiness whose actor is idle (its mailbox empty
// and blocked: nothing runs or queues it) does not need a message to wake
// it: `run_direct` takes the actor as a scheduler takes a job (the mailbox
// from blocked to empty, CAF's own hand-over), runs the readiness handler
// as a turn here, and gives the actor back (blocked again; CAF's `resume`
// for messages that came meanwhile, `finalize` for an actor that quit).
// That saves, per readiness, the message's allocation, the mailbox's queue
// and the match against the actor's behavior — the turn itself is the same.
// An actor that is not idle gets the message, as before.
//
// Spread or gather. While the machine has idle cores, the unit keeps one
// job, the newest: a second one sends the older to the scheduler at once,
// where a worker takes it in parallel, and what is left after `turns` turns,
// or an actor with more messages than one turn takes, goes there too (one
// chain at a time runs here). While the cores are contended, a job sent to
// the scheduler waits for a worker that itself waits for a core, and every
// such hand-off costs a time slice: then the unit gathers — keeps up to
// `turns` jobs and runs them here in turn (as asio's single `io_context`
// thread does), and only what exceeds that goes to the scheduler. While
// the unit gathers, a protocol's producer (here or on a worker) sends at
// most 64 KiB per turn and goes on with its socket's write readiness, which
// brings it here after the other ready sockets (tcp_stream.cpp:
// `protocol_io`), so a writer and its reader alternate here a chunk at a
// time. The I/O thread counts as gathering no more once it ended.
//
// Which: `weave.tcp-gather` (runtime_config.hpp): `auto` (the default)
// measures, `always` and `never` fix it. `auto` looks at most every
// `sample_every`, and only while the thread runs turns, at the machine's
// busy time (`/proc/stat`; only the cores this process may run on, if its
// affinity or cpuset leaves out some) less this process's own CPU time
// (`getrusage`): the cores the other processes kept busy. Under a CPU quota (a container's
// cgroup: v2 `cpu.max`, v1 `cpu.cfs_quota_us`), where `/proc/stat` shows
// the host, also at each quota (of its cgroup and of their parents) less
// what that cgroup's other processes used (its `cpu.stat` /
// `cpuacct.usage`); the smallest figure counts. It starts gathering once
// they leave this process fewer than `min_free_cores_x100` hundredths of a
// core, and spreads again from `spread_again_x100` (each look decides;
// with neither `/proc/stat` nor a quota it never gathers).
//
// What runs here is user code (the handlers of actors that a TCP actor
// answers), so the thread must not block: it is marked so (futures refuse
// to wait on it), and the blocking detector watches its turns like a
// worker's (`blocking_detector::io_slot`; its counters are
// `metrics_snapshot::tcp_io`). A handler that blocks holds
// every socket's readiness until it returns.
//
// Only the I/O thread, between `bind` and `unbind`, keeps jobs: `exec_later`
// called from any other thread (a response promise delivered elsewhere by
// an actor whose last turn ran here keeps this unit as its context) goes to
// the scheduler. That is also why the unit lives as long as the actor system
// (runtime_access::keep_with_system), not as long as the I/O thread.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "caf/execution_unit.hpp"
#include "caf/fwd.hpp"
#include "caf/message.hpp"

#include "runtime/internal/blocking_detector.hpp"

namespace weave::actors::internal {

class io_unit : public caf::execution_unit {
public:
  /// Messages one turn on the I/O thread handles at most.
  static constexpr size_t turn_messages = 64;

  /// How often `automatic` looks at the machine's load (at most).
  static constexpr std::chrono::milliseconds sample_every{100};

  /// `automatic` gathers while other processes leave this one fewer cores
  /// than this (in hundredths of a core): the I/O thread and a worker.
  static constexpr uint64_t min_free_cores_x100 = 150;

  /// Once gathering, `automatic` spreads again only when this much is left
  /// (hundredths of a core).
  static constexpr uint64_t spread_again_x100 = 175;

  /// `weave.tcp-gather`.
  enum class gather_mode { automatic, always, never };

  /// `detector` may be null (CAF's own scheduler policies).
  io_unit(caf::actor_system& sys, size_t turns,
          weave::internal::blocking_detector* detector,
          gather_mode gather = gather_mode::automatic);
  ~io_unit() override;

  /// `weave.tcp-inline-turns` (0: nothing runs here).
  size_t turns() const noexcept {
    return turns_;
  }

  /// True on the I/O thread while it gathers (see above).
  static bool gathering_here() noexcept;

  /// The unit bound to the calling thread (its I/O thread's), or null.
  static io_unit* current() noexcept;

  /// Counts a readiness kept for the next pass (tcp_reactor.hpp,
  /// `yield_ready`).
  void count_kept_readiness() noexcept;

  /// Any thread: whether the unit gathers now (see above).
  bool gathering() const noexcept {
    return gathering_.load(std::memory_order_relaxed);
  }

  /// On the I/O thread, after running turns: looks at the machine's load
  /// if `sample_every` passed since the last look (`automatic` only).
  void sample() noexcept;

  /// The cores, in hundredths, that other processes left this one in a
  /// window: `cpus` cores, `all_ns` of all cores' time in the window,
  /// `busy_ns` of it busy, `ours_ns` of that this process's.
  static uint64_t cores_left_x100(uint64_t cpus, uint64_t all_ns,
                                  uint64_t busy_ns, uint64_t ours_ns) noexcept;

  /// `automatic`'s decision: whether to gather, gathering `now` or not,
  /// with `left_x100` hundredths of a core left (see above).
  static bool gathers(bool now, uint64_t left_x100) noexcept;

  /// The busy and all time (clock ticks) in `text` (`/proc/stat`): of the
  /// cores `only` marks (`cpuN` lines), or, if null, of the machine (the
  /// `cpu` line). False if nothing was found.
  static bool parse_stat(const char* text, const std::vector<bool>* only,
                         uint64_t& busy, uint64_t& total) noexcept;

  /// The cores, in hundredths, that a quota of `quota_x100` leaves this
  /// process in a window of `window_ns` in which the cgroup's other
  /// processes used `others_ns` of CPU time.
  static uint64_t quota_left_x100(uint64_t quota_x100, uint64_t window_ns,
                                  uint64_t others_ns) noexcept;

  /// A CPU quota (cgroups) this process runs under.
  struct cpu_quota {
    /// One cgroup with a quota (this process's or a parent).
    struct level {
      /// In hundredths of a core (at least 1).
      uint64_t cores_x100 = 0;
      /// The file that holds that cgroup's CPU time so far: v2 `cpu.stat`
      /// (`usage_usec`), v1 `cpuacct.usage` (nanoseconds); may be empty.
      std::string usage_path;
      /// `sample`'s: the usage and this process's time at the last look
      /// that read it, and when.
      uint64_t last_usage_ns = 0;
      uint64_t last_ours_ns = 0;
      std::chrono::steady_clock::time_point last_look{};
    };
    /// The smallest quota, in hundredths of a core; 0: no quota found.
    uint64_t cores_x100 = 0;
    /// Its cgroup's usage file (see `level`).
    std::string usage_path;
    /// Every level with a quota: each one's quota less what its other
    /// processes used is a ceiling (a parent's siblings compete too).
    std::vector<level> levels;
  };

  /// The smallest CPU quota of the cgroups that `self_cgroup` (the text of
  /// `/proc/self/cgroup`) names, and of their parents, under `fs_root`
  /// (`/sys/fs/cgroup`): cgroup v2 (`0::/path`, `cpu.max`) or v1 (the
  /// `cpu` controller's `cpu.cfs_quota_us` / `cpu.cfs_period_us`).
  static cpu_quota find_cpu_quota(const std::string& self_cgroup,
                                  const std::string& fs_root);

  /// The CPU time in nanoseconds that `usage_path` (see `cpu_quota`) says
  /// its cgroup used so far, or false.
  static bool read_cgroup_usage_ns(const std::string& usage_path,
                                   uint64_t& ns) noexcept;

  /// Jobs kept here (the reactor must not sleep while there are any).
  bool has_kept() noexcept;

  /// On the I/O thread, before its first `deliver`: jobs made runnable on
  /// this thread are kept here from now on.
  void bind() noexcept;

  /// On the I/O thread, as it ends: hands a kept job to the scheduler; jobs
  /// go to the scheduler from now on.
  void unbind() noexcept;

  /// Sends `msg` to `who` from nobody; if that makes `who` runnable, it is
  /// the next job here (with `turns == 0`: the scheduler's).
  void deliver(const caf::strong_actor_ptr& who, caf::message msg);

  /// A turn that a readiness starts in its socket's actor, called without
  /// a message (`run_direct`): the actor's handler of that readiness. It
  /// must not throw (it ends the actor instead).
  using direct_turn = void (*)(caf::scheduled_actor* who,
                               uint32_t events) noexcept;

  /// On the I/O thread: runs `fn(who, events)` here and now as a turn of
  /// `who`, without a message, if `who` is idle (its mailbox empty and
  /// blocked: not running, not queued anywhere). It takes the actor as a
  /// scheduler does (the mailbox from blocked to empty: a message sent to
  /// it meanwhile schedules nothing), runs the turn like `run_chain` runs
  /// one (the blocking detector's slot, the deadline scope), ends the
  /// actor if the turn quit it (CAF's `finalize`), and gives it back (its
  /// mailbox blocked again) or, if messages came meanwhile, keeps it here
  /// as a job for them (`exec_later`). False, and nothing done, if `who`
  /// is not idle or `turns == 0`: then the caller sends the readiness as
  /// a message. What this saves per readiness: the message, the mailbox's
  /// queue, and the match against the actor's behavior.
  bool run_direct(caf::scheduled_actor* who, direct_turn fn,
                  uint32_t events) noexcept;

  /// Runs the kept jobs, and those their turns make runnable, in order: at
  /// most `turns` turns (see above).
  /// `done` turns ran here already in this pass (`run_direct`): they
  /// count against the budget, but one kept job runs at least.
  size_t run_chain(size_t done = 0) noexcept;

  /// Any thread: hands the kept jobs, if any, to the scheduler. The TCP
  /// reactor's standby calls it while a turn here is stuck: an actor that
  /// the stuck handler made runnable (a send, then a synchronous wait for
  /// its answer) would otherwise wait for the stuck turn, where on a worker
  /// another worker steals it.
  void release_kept() noexcept;

  void exec_later(caf::resumable* job) override;

private:
  /// `/proc/stat` now (see `parse_stat`), or false.
  bool read_machine(uint64_t& busy, uint64_t& total) noexcept;

  /// Hands `job` (and the reference it carries) to CAF's scheduler.
  void to_scheduler(caf::resumable* job) noexcept;

  /// Keeps `job` (its reference); returns a job to hand to the scheduler
  /// (the older one while spreading, or one over the bound), or null.
  caf::resumable* keep(caf::resumable* job) noexcept;

  /// The next kept job, or null.
  caf::resumable* take() noexcept;

  const size_t turns_;
  const gather_mode mode_;
  weave::internal::blocking_detector* const detector_;
  weave::internal::blocking_detector::slot* const slot_;
  weave::internal::scheduler_recorder::worker* const metrics_;
  /// The jobs to run here, in order (each holds a reference); added by the
  /// I/O thread only, taken by it or by `release_kept` (the standby's
  /// thread): hence the lock, which guards nothing else (no turn runs
  /// under it).
  std::mutex mtx_;
  std::deque<caf::resumable*> kept_;
  std::atomic<bool> gathering_{false};
  // `sample`'s state (the I/O thread's only).
  bool probed_ = false;
  bool looking_ = false; // `automatic`, with something to look at
  int stat_fd_ = -1;
  std::vector<char> stat_buf_;
  /// The cores this process may run on, if not every one (else empty).
  std::vector<bool> cpus_of_ours_;
  uint64_t machine_left_x100_ = UINT64_MAX; // the last look's, or none
  cpu_quota quota_;
  uint64_t tick_ns_ = 0;
  uint64_t cpus_ = 0;
  std::chrono::steady_clock::time_point last_look_{};
  uint64_t last_busy_ = 0;
  uint64_t last_total_ = 0;
  uint64_t last_ours_ns_ = 0;
};

} // namespace weave::actors::internal
