#pragma once

// Internal: the state of a remote_pool (see remote_pool.hpp for what it
// promises).
//
// Parts:
// - the tables (queue, calls, nodes), guarded by `mtx_`;
// - the client actor `<name>-io` (detached: the continuations of the
//   futures it completes run on its own thread, never a scheduler thread).
//   It connects to each worker through the middleman actor's `connect`
//   request with a deadline, asks it `hello`, monitors it, receives its
//   claims and results (remote_protocol.hpp), and retries a worker that is
//   down after a back-off (a delayed message to itself).
//
// A node (one worker address) has a generation, bumped at each connection
// attempt: a message of an earlier connection is recognised and ignored.
// Losing a node takes its calls out of the tables under the lock and
// answers them after unlocking.
//
// Locking: `mtx_` guards the tables only. It is never held while user code
// runs: answers (future continuations, destructors of results) and sends
// happen after unlocking; nothing blocks under it.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"

#include "runtime/internal/component.hpp"
#include "runtime/internal/remote_job.hpp"
#include "runtime/remote_pool.hpp"

namespace weave::internal {

/// Splits "host:port" (or "[v6]:port"); an error naming `text` otherwise.
/// `allow_zero`: port 0 (any free port, for listening) is accepted.
caf::error parse_address(const std::string& text, std::string& host,
                         uint16_t& port, bool allow_zero);

/// The application ids the BASP server at host:port announces (empty if
/// it cannot tell within `timeout`).
std::vector<std::string> probe_app_ids(const std::string& host, uint16_t port,
                                       caf::timespan timeout);

/// What the client actor needs for one connection attempt.
struct attempt_plan {
  std::string host;
  uint16_t port = 0;
  uint32_t gen = 0;
  caf::timespan timeout{0};
};

class remote_pool_impl final
  : public component,
    public std::enable_shared_from_this<remote_pool_impl> {
public:
  remote_pool_impl(runtime& rt, remote_pool_options opts);

  ~remote_pool_impl() override;

  /// Validates, starts the client actor and waits for the first attempts;
  /// throws (after stopping what it started) if no worker joined.
  void start();

  void enqueue(remote_call_ptr c, caf::timespan timeout);

  remote_pool::stats_type stats() const;
  std::vector<remote_pool::node_info> nodes() const;

  const remote_pool_options& options() const noexcept {
    return opts_;
  }

  // -- component --------------------------------------------------------------

  shutdown_phase phase() const noexcept override {
    return shutdown_phase::pools;
  }
  void begin_shutdown(shutdown_report& report) override;
  void finish_shutdown(steady_clock::time_point deadline,
                       shutdown_report& report) override;
  /// Waits for running jobs until `deadline`, answers the rest and counts
  /// them; `finish_shutdown` then stops the client actor (true: that is
  /// left).
  bool settle_jobs(steady_clock::time_point deadline,
                   shutdown_report& report) override;
  void release_actors() noexcept override;

  // -- the client actor's side (remote_pool_nodes.cpp) ------------------------

  /// Starts an attempt on node `index`; none while stopping.
  std::optional<attempt_plan> begin_attempt(size_t index);
  /// An attempt failed: records why; returns the delay before the next.
  std::optional<caf::timespan> attempt_failed(size_t index, uint32_t gen,
                                              const std::string& why);
  /// A failure that is CAF's, not the worker's: true if it may be tried
  /// again at once (at most `max_transient` times in a row).
  bool transient_failure(size_t index);
  static constexpr size_t max_transient = 3;
  /// The worker answered `hello`. False (and `why` set) if refused.
  bool on_join(size_t index, uint32_t gen, const caf::actor& worker,
               int32_t pid, const std::vector<std::string>& table,
               uint32_t capacity, std::string& why);
  /// A monitored worker went down; returns the node and the delay before
  /// reconnecting, if it was one of ours.
  std::optional<std::pair<size_t, caf::timespan>>
  on_down(const caf::actor_addr& who, const caf::error& reason);
  /// Renders why an attempt on node `index` failed (for an application id
  /// mismatch, the ids of both ends: may probe the worker, briefly).
  std::string explain(const caf::error& err, size_t index) const;

  bool on_claim(uint64_t id, uint32_t slot, uint32_t gen);
  void on_done(uint64_t id, uint32_t slot, uint32_t gen,
               const std::vector<char>& result);
  void on_failed(uint64_t id, uint32_t slot, uint32_t gen, caf::error err);

  /// The middleman actor (TLS-aware if the OpenSSL module is loaded).
  caf::actor middleman_actor() const;

private:
  struct node_state {
    std::string address;
    std::string host;
    uint16_t port = 0;
    uint32_t generation = 0;
    caf::actor actor;
    bool joined = false;
    bool attempted = false; // its first attempt ended
    int32_t pid = 0;
    size_t capacity = 0;
    size_t held = 0;
    std::unordered_set<uint64_t> ids;
    std::set<std::string> runnable;
    size_t completed = 0;
    size_t losses = 0;
    size_t failed_attempts = 0;
    size_t transient = 0; // transient failures in a row
    caf::timespan backoff{0};
    std::string last_error;
  };

  /// A run message to send after unlocking; or (no `dest`) a call taken
  /// out of the tables whose last reference must go after unlocking.
  struct outgoing {
    caf::actor dest;
    /// The client actor, the sender the worker knows this pool by.
    caf::actor from;
    uint64_t id = 0;
    std::string name;
    std::vector<char> args;
    remote_call_ptr keep;
  };

  struct answer {
    remote_call_ptr call;
    caf::error err;
  };

  void dispatch_locked(std::vector<outgoing>& out);
  static void send_all(std::vector<outgoing>& out);
  static void deliver(std::vector<answer>& answers);
  std::vector<remote_call_ptr> take_calls_locked(node_state& n);
  /// Answers or requeues the calls of a lost node (lock held).
  void lose_locked(node_state& n, const std::string& why,
                   std::vector<answer>& answers, std::vector<outgoing>& out);
  caf::timespan next_backoff_locked(node_state& n);
  void finish_call_locked(node_state& n, uint64_t id);
  void fail_start(caf::error err);
  void stop_client();

  struct client_end {
    std::mutex mtx;
    std::condition_variable cv;
    bool ended = false;
  };

  runtime* rt_;
  caf::actor_system* sys_;
  remote_pool_options opts_;
  std::string app_id_;
  std::shared_ptr<client_end> client_end_ = std::make_shared<client_end>();
  caf::actor client_;

  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<remote_call_ptr> queue_;
  std::unordered_map<uint64_t, remote_call_ptr> calls_;
  std::vector<node_state> nodes_;
  /// Jobs some node that joined can run.
  std::set<std::string> known_;
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  /// `settle_jobs`: 0 not begun, 1 waiting for running jobs, 2 done.
  int settled_ = 0;
  bool finished_ = false;
  size_t in_flight_ = 0;
  size_t joined_ = 0;
  process_pool::stats_type counts_;
};

} // namespace weave::internal
