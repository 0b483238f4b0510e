#pragma once

// Internal: the state of a process_pool (see process_pool.hpp for what it
// promises).
//
// Parts:
// - the tables (queue, calls, slots), guarded by `mtx_`;
// - the client actor `<name>-io` (detached: the continuations of the
//   futures it completes run on its own thread, never a scheduler thread),
//   which receives the workers' messages (remote_protocol.hpp; jobs, claims
//   and results travel in batches, process_pool_batch.hpp) and DOWNs;
// - one thread per slot, `<name>-w<i>`, which starts the slot's worker
//   process, waits for it to exit (`waitid` without reaping first, so that
//   no one signals a recycled pid), loses it, reaps it, and starts the
//   next one unless the pool stops.
//
// A worker is lost by whichever comes first: the DOWN of its actor (its
// connection dropped, or a frozen worker missed the middleman's heartbeats
// for the connection timeout) or its exit. Losing it sends it SIGKILL (a
// stopped process ignores anything else), takes its calls out of the tables
// under the lock and answers them after unlocking.
//
// Granting as sent: while a worker holds no call waiting for its claim and
// fewer granted calls than its claim window, the pool grants a fresh call
// as it sends it (the call's job starts; the worker needs no claim), so a
// stream of short jobs costs no claim round trip. Such a call is "in
// transit" until its message is handed to CAF: a revoke asked for then
// waits and is sent after it (a revoke that overtook its call would find
// nothing to drop there).
//
// Revoking a claimed call: a worker claims calls ahead of running them, so
// a claimed call may still wait there. Its cancel (`stop_remote`) or its
// deadline (an entry on the runtime's deadline timer armed at the grant,
// holding the pool and the call weakly, swept once the call is answered,
// so no deadline keeps the client actor alive) sends the worker a
// `revoke`; the worker answers at once whether it dropped the call (never
// to run: the call is answered `cancelled`/`timeout`, marked not started,
// and the worker lives on) or the call runs. Only one revoke per call is in
// flight; a worker lost meanwhile answers the call (`cancelled` if its
// caller cancelled it), and the revoke's late answer finds it gone.
//
// Retried calls (idempotent, their worker lost): a call granted before may
// have run, so every later answer of it says "maybe executed", even when
// its next worker drops it. A call whose deadline passed is answered
// `timeout` instead of being retried, and a retried call is granted again
// only before its deadline and unless cancelled. Its deadline is watched
// from the moment it is requeued (`any_slot`): due while it waits here, it
// is answered `timeout` at once; due once sent on, it is revoked there. A
// revoke may overtake the retried call on its way to the next worker
// (`regranting` until that worker claims it): that worker's "runs" then
// means it has not seen the call yet, and the revoke is sent again (the
// call cannot run there before its claim, which would arrive before the
// answer); the claim, if it comes first, refuses the call (cancelled, or
// due).
//
// Cancelling a running call (threads_per_worker == 1 only): when the
// revoke's answer says it runs, the call is marked and the client actor
// gets a delayed `cancel` for the end of the runtime's cancel grace; if the
// call is still held by the same worker then, that worker is lost (killed)
// in the same critical section that answers the call `cancelled`, so no
// other job is sent to it between.
//
// Locking: `mtx_` guards the tables only. It is never held while user code
// runs: answers (future continuations, destructors of results) and sends
// happen after unlocking. It is never held across a blocking call other
// than `kill`.

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "caf/actor.hpp"
#include "caf/atom.hpp"
#include "caf/actor_system.hpp"

#include "runtime/internal/component.hpp"
#include "runtime/internal/process_pool_batch.hpp"
#include "runtime/internal/remote_job.hpp"
#include "runtime/process_pool.hpp"

namespace weave::internal {

/// Sent by a process pool to its own client actor (never over the wire):
/// the cancel grace of a running call ended.
using cancel_atom = caf::atom_constant<caf::atom("wv_cancel")>;

class process_pool_impl final
  : public component,
    public remote_stopper,
    public std::enable_shared_from_this<process_pool_impl> {
public:
  process_pool_impl(runtime& rt, process_pool_options opts);

  ~process_pool_impl() override;

  /// Validates, publishes the client actor, starts the workers and waits
  /// until all joined; throws (after stopping what it started) otherwise.
  void start();

  void enqueue(remote_call_ptr c, caf::timespan timeout);

  process_pool::stats_type stats() const;
  std::vector<int> worker_pids() const;
  /// Calls the workers claimed and have not answered.
  size_t claimed() const;

  const process_pool_options& options() const noexcept {
    return opts_;
  }

  // -- component --------------------------------------------------------------

  shutdown_phase phase() const noexcept override {
    return shutdown_phase::pools;
  }
  void begin_shutdown(shutdown_report& report) override;
  void finish_shutdown(steady_clock::time_point deadline,
                       shutdown_report& report) override;
  /// Waits for running jobs until `deadline`, answers the rest, counts
  /// them and sends SIGTERM to the workers; `finish_shutdown` then stops
  /// the client actor and reaps the workers (true: that is left).
  bool settle_jobs(steady_clock::time_point deadline,
                   shutdown_report& report) override;
  void release_actors() noexcept override;

  // -- the client actor's handlers --------------------------------------------

  void on_join(const caf::actor& worker, uint32_t slot, uint32_t gen,
               int32_t pid, const std::vector<std::string>& table);
  void on_failed(uint64_t id, uint32_t slot, uint32_t gen, caf::error err);
  /// Claims of several jobs (process_pool_batch.hpp): one flag per id.
  std::vector<char> on_claims(uint32_t slot, uint32_t gen,
                              const std::vector<char>& ids);
  /// Results of several jobs (process_pool_batch.hpp).
  void on_dones(uint32_t slot, uint32_t gen, const std::vector<char>& items);
  /// Jobs the worker dropped because their deadline passed before a thread
  /// began them (process_pool_batch.hpp).
  void on_lates(uint32_t slot, uint32_t gen, const std::vector<char>& ids);
  void on_down(const caf::actor_addr& who, const caf::error& reason);
  void on_cancel_grace(uint64_t id, uint32_t slot, uint32_t gen);
  /// A worker's answer to a revoke: `dropped` if the call never runs.
  void on_revoked(uint64_t id, uint32_t slot, uint32_t gen, bool dropped);
  /// The deadline of a claimed call has come (the runtime's timer thread):
  /// revokes it. With `slot == any_slot` (a retried call), wherever it is:
  /// answered `timeout` at once if it waits in the queue, else revoked on
  /// the worker it was sent to.
  void on_revoke_due(uint64_t id, uint32_t slot, uint32_t gen);

  /// `on_revoke_due`'s slot for a retried call: wherever it is now.
  static constexpr uint32_t any_slot = ~uint32_t{0};

  /// Puts a revoke for `call`, due at its deadline, on the runtime's timer
  /// (after unlocking; the timer holds pool and call weakly).
  void arm_revoke_watch(remote_call_ptr call, uint32_t slot, uint32_t gen);

  // -- remote_stopper ---------------------------------------------------------

  bool stop_remote(uint64_t id, errc cause) noexcept override;

private:
  struct slot_state {
    uint32_t generation = 0;
    pid_t pid = 0;     // 0: none, or reaped (never signal it then)
    caf::actor actor;  // set by join
    bool joined = false;      // connected and not lost
    bool connected = false;   // joined in this generation
    bool refused = false;     // its job table did not match: no restart
    bool thread_done = false; // its slot thread has ended
    bool lost = true;  // no live worker in this slot
    size_t held = 0;   // calls this worker holds
    size_t granted = 0; // of those, granted (claimed, or granted as sent)
    std::unordered_set<uint64_t> ids;
    std::thread thread;
  };

  /// A run message to send after unlocking; or (no `dest`) a call taken
  /// out of the tables, whose last reference (its job: a future's state, an
  /// actor's handle) must go after unlocking.
  struct outgoing {
    caf::actor dest;
    uint64_t id = 0;
    std::string name;
    std::vector<char> args;
    remote_call_ptr keep;
    /// Granted as it is sent (`keep` is the call): in transit until sent.
    bool granted = false;
    uint32_t slot = 0;
    uint32_t gen = 0;
    /// The call's deadline (`run_item::deadline`).
    int64_t deadline = no_deadline;
  };

  /// An answer to deliver after unlocking.
  struct answer {
    remote_call_ptr call;
    caf::error err;
  };

  void slot_main(size_t index);
  pid_t spawn_worker(size_t index, uint32_t gen, std::string& error);
  /// Loses the worker in slot `index`, incarnation `gen` (a no-op if that
  /// one is lost already). With `cancelled` != 0: only if that call is
  /// still held there; it is answered `cancelled`, the others `worker_lost`.
  void lose_worker(size_t index, uint32_t gen, const std::string& why,
                   uint64_t cancelled = 0);
  /// Waits (unless the pool stops) before a slot starts its next worker,
  /// and doubles `delay` up to the cap.
  void back_off(std::unique_lock<std::mutex>& guard, caf::timespan& delay);
  void dispatch_locked(std::vector<outgoing>& out);
  /// Grants the start of call `id` to the worker in `slot`, incarnation
  /// `gen`; a call that must not start is taken out (lock held).
  bool claim_locked(uint64_t id, uint32_t slot, uint32_t gen,
                    std::vector<outgoing>& out, std::vector<answer>& answers);
  using call_map = std::unordered_map<uint64_t, remote_call_ptr>;
  /// Call `id` if the worker in `slot`, incarnation `gen`, holds it, else
  /// `calls_.end()` (lock held).
  call_map::iterator held_locked(uint64_t id, uint32_t slot, uint32_t gen);
  /// Takes call `id` out as completed by that worker; null if it was
  /// answered already (lock held).
  remote_call_ptr done_locked(uint64_t id, uint32_t slot, uint32_t gen);
  /// Sends the run messages of `out` (one per worker), then ends the
  /// transit of the calls granted in them: sends the revokes asked for
  /// meanwhile and arms their deadlines' revokes (lock not held).
  void send_all(std::vector<outgoing>& out);
  /// The most calls one worker holds granted and not finished.
  size_t grant_window() const noexcept;
  /// Marks call `id`, held by `slot`/`gen`, as revoking for `cause` and
  /// returns its worker, or none if it is not (any longer) claimed there
  /// or a revoke is in flight already (lock held).
  caf::actor revoke_locked(uint64_t id, uint32_t slot, uint32_t gen,
                           errc cause);
  /// Sends `revoke` for `id` to `worker` (after unlocking).
  static void send_revoke(const caf::actor& worker, uint64_t id) noexcept;
  /// Answers `answers` (their futures' continuations run here).
  static void deliver(std::vector<answer>& answers);
  /// The calls of `index` out of the tables (lock held).
  std::vector<remote_call_ptr> take_calls_locked(slot_state& s);
  /// Takes call `i`, held by `s`, out of the tables as answered (lock
  /// held; the caller answers it after unlocking).
  void retire_locked(call_map::iterator i, slot_state& s);
  void signal_all_locked(int sig);
  bool all_reaped_locked() const;
  void fail_start(caf::error err);

  /// Set when the client actor has terminated (its thread ends right
  /// after): shared with the actor's exit functor.
  struct client_end {
    std::mutex mtx;
    std::condition_variable cv;
    bool ended = false;
  };

  /// Stops the client actor and waits (bounded) until its thread is gone,
  /// so that the runtime does not count it as abandoned.
  void stop_client();

  runtime* rt_;
  std::shared_ptr<client_end> client_end_ = std::make_shared<client_end>();
  caf::actor_system* sys_;
  process_pool_options opts_;
  caf::timespan cancel_grace_;
  std::string program_;
  caf::actor client_;
  uint16_t port_ = 0;

  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<remote_call_ptr> queue_;
  call_map calls_;
  std::vector<slot_state> slots_;
  std::set<std::string> runnable_;
  uint64_t next_id_ = 1;
  bool starting_ = true;
  bool stopping_ = false;
  /// `settle_jobs`: 0 not begun, 1 waiting for running jobs, 2 done.
  int settled_ = 0;
  /// When `settle_jobs` sent SIGTERM: the grace before SIGKILL counts from
  /// here, so the graces of a phase's pools run side by side.
  steady_clock::time_point term_sent_{};
  bool finished_ = false;
  caf::error start_error_;
  size_t in_flight_ = 0;
  size_t joined_ = 0;
  process_pool::stats_type counts_;
  /// Sent after unlocking, so counted apart from `counts_`.
  std::atomic<size_t> run_messages_{0};
};

} // namespace weave::internal
