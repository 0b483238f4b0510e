#pragma once

// Internal: what each weave thread is doing right now, published by the
// thread itself so that `runtime::dump()` can read it without stopping
// anybody.
//
// Every thread a runtime starts through CAF (scheduler workers, CAF's clock,
// detached actors: pool workers, loops on their own thread, blockers) gets
// a `thread_activity` record when it starts (the runtime's thread hook
// calls `enter`) and loses it when it ends (`leave`). The record lives in
// one process-wide registry, tagged with the runtime that started the
// thread, so that a dump lists that runtime's threads only.
//
// Publishing is lock-free: the owning thread writes its record as a
// seqlock (an odd sequence number while it writes; release stores, so a
// reader that sees any new field also sees the odd number), and a dumper
// copies the fields and retries if the number moved. A job start costs one
// read of the coarse clock and a handful of plain stores; a labelled job
// also copies its label (at most `max_label` bytes) into the record, so the dump never
// points into a job that may be gone. A stop request is the exception: the
// thread cannot write it (it is inside the job), so the stopper marks it
// (`note_stop`): it finds the record running that job under the registry's
// lock, which is taken only at thread start and end, by a stop request
// that reached a running job, and by a dump.
//
// Scheduler workers publish through the blocking detector's slots (the
// scheduler policy stamps them at every resume); their record only points
// at their slot (`bind_slot`), and the dump reads the slot.
//
// Lock: the registry's mutex guards the list of records and their names;
// no user code runs under it, and no other lock is taken under it.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/internal/blocking_detector.hpp"
#include "runtime/internal/job.hpp"

namespace weave {
struct thread_dump;
} // namespace weave

namespace weave::internal {

/// What a thread is there for.
enum class thread_role : uint8_t {
  scheduler,
  clock,
  pool_worker,
  loop,
  blocker,
  /// A detached actor that is none of the above (a user's, CAF's printer).
  actor,
  /// weave's own service threads (watchdog, timer, shutdown, signals).
  service,
};

/// Lists the calling thread (one weave starts itself, not through CAF) in
/// the dumps of the runtime whose configuration is `owner` while it lives;
/// the destructor takes it off.
class service_thread_scope {
public:
  service_thread_scope(const void* owner, std::string name) noexcept;
  ~service_thread_scope();
  service_thread_scope(const service_thread_scope&) = delete;
  service_thread_scope& operator=(const service_thread_scope&) = delete;

private:
  bool entered_ = false;
};

/// What a thread is doing.
enum class thread_state : uint8_t { unknown, running, spinning, parked };

class thread_activity {
public:
  /// The longest label a record keeps (longer ones are cut).
  static constexpr size_t max_label = 63;

  /// A consistent copy of a record's published fields.
  struct snapshot {
    thread_state state = thread_state::unknown;
    /// When the thread entered its state or started its job, on
    /// `activity_clock_ns()` (0: unknown).
    int64_t since_ns = 0;
    /// The running job (compared, never dereferenced), or null.
    const void* job = nullptr;
    const char* kind = nullptr;
    char label[max_label + 1] = {};
    /// The running job's deadline; INT64_MAX for none.
    int64_t deadline_ns = INT64_MAX;
    /// The cause of a stop requested for the running job, or `errc{}`.
    errc stop_cause = errc{};
  };

  /// The owning thread starts running `j` (call before it claims it, so
  /// that a stop request that sees it running finds it here).
  void begin_job(const job& j) noexcept;

  /// The owning thread is done with its job and is now in `next`.
  void end_job(thread_state next) noexcept;

  /// The owning thread (idle) is now in `next`; `stamp` reads the clock.
  void set_state(thread_state next, bool stamp) noexcept;

  /// A scheduler worker's slot in the blocking detector.
  void bind_slot(const blocking_detector::slot* s, size_t worker) noexcept {
    worker_ = worker;
    slot_.store(s, std::memory_order_release);
  }

  const blocking_detector::slot* slot() const noexcept {
    return slot_.load(std::memory_order_acquire);
  }

  size_t worker() const noexcept {
    return worker_;
  }

  /// Copies the published fields (retries while the owner writes).
  snapshot read() const noexcept;

  // -- registry-owned fields (under the registry's lock) ----------------------

  const void* owner = nullptr;
  thread_role role = thread_role::actor;
  std::string name;
  thread_activity* next = nullptr;
  thread_activity* prev = nullptr;

private:
  friend void note_stop(const job& j, errc cause) noexcept;

  void write_begin() noexcept {
    seq_.store(seq_.load(std::memory_order_relaxed) + 1,
               std::memory_order_relaxed);
  }

  void write_end() noexcept {
    seq_.store(seq_.load(std::memory_order_relaxed) + 1,
               std::memory_order_release);
  }

  static constexpr size_t label_words = (max_label + 1) / 8;

  std::atomic<uint32_t> seq_{0};
  std::atomic<thread_state> state_{thread_state::unknown};
  std::atomic<uint8_t> label_len_{0};
  std::atomic<uint8_t> stop_cause_{0};
  std::atomic<int64_t> since_ns_{0};
  std::atomic<int64_t> deadline_ns_{INT64_MAX};
  std::atomic<const void*> job_{nullptr};
  std::atomic<const char*> kind_{nullptr};
  std::atomic<uint64_t> label_[label_words] = {};
  std::atomic<const blocking_detector::slot*> slot_{nullptr};
  size_t worker_ = 0;
};

/// The clock of `snapshot::since_ns`: CLOCK_MONOTONIC_COARSE (the time
/// base of `steady_clock`, read cheaply, one kernel tick behind at most).
int64_t activity_clock_ns() noexcept;

/// The coarse clock's resolution (one kernel tick), in nanoseconds.
int64_t activity_clock_resolution_ns() noexcept;

/// Gives the calling thread a record, tagged with `owner` (the runtime's
/// configuration), and names it `name`.
void enter_thread_activity(const void* owner, thread_role role,
                           std::string name) noexcept;

/// Removes the calling thread's record (at its end).
void leave_thread_activity() noexcept;

/// The calling thread's record, or null (not a weave thread).
thread_activity* this_thread_activity() noexcept;

/// Sets the calling thread's role (a detached actor that turns out to be a
/// pool worker, a loop or a blocker).
void set_thread_role(thread_role role) noexcept;

/// Binds the calling scheduler worker's record to its detector slot, and
/// names the thread after its worker index (`weave-sched-<worker>`, so that
/// a name in a dump and a slow-handler report's worker agree).
void bind_thread_activity(const blocking_detector::slot* s,
                          size_t worker) noexcept;

/// Renames the calling thread's record (see `set_this_thread_name`).
void rename_thread_activity(const std::string& name) noexcept;

/// Waits until `owner` has at least `schedulers` threads with the scheduler
/// role and `clocks` with the clock role, or until `deadline`; true if it
/// has. CAF starts its threads in the actor system's constructor but each
/// enters its record when it first runs: the runtime waits here so that a
/// dump taken right after construction lists them all.
bool wait_for_thread_roles(const void* owner, size_t schedulers,
                           size_t clocks, steady_clock::time_point deadline);

/// One thread of a dump: the registry-owned fields and a snapshot; for a
/// scheduler worker, a copy of its detector slot too.
struct thread_record_copy {
  std::string name;
  thread_role role = thread_role::actor;
  thread_activity::snapshot activity;
  /// Scheduler workers (bound to a slot) only:
  bool has_slot = false;
  size_t worker = 0;
  bool in_resume = false;
  blocking_detector::idle_state idle = blocking_detector::idle_state::running;
  int64_t resume_started_ns = 0;
  uint64_t actor = 0;
  std::string actor_name;
};

/// Copies the records of `owner`'s threads, under the registry's lock.
std::vector<thread_record_copy> copy_thread_activity(const void* owner);

/// A dump of `owner`'s threads (see thread_dump.hpp).
thread_dump take_thread_dump(const void* owner);

} // namespace weave::internal
