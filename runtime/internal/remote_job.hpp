#pragma once

// Internal: the caller's side of a registered job sent to a process pool.
//
// A `remote_call` is what the pool moves around: the job's name, its
// encoded arguments, its deadline, and the `job` that its caller waits on
// (a future's state, or an actor's response). That job's state machine
// decides who answers: it stays `queued` until a worker asks to start it
// (the pool's grant calls `try_start()`), so a `cancel()` or a timeout
// before then wins the CAS and the job never runs anywhere; after the grant
// only the pool answers it (the result, `worker_lost`, `shut_down`), once,
// because it answers a call only after taking it out of its tables under
// its lock. The state also gives the mark of a lost job: still `queued` is
// "not started", granted is "maybe executed".
//
// A started call can be stopped only by its pool (a process pool kills the
// worker running it): `job::stop_running` reaches the pool through the
// target's `stopper`, a weak reference, so a handle that outlives its pool
// asks nobody.
//
// Thread-safety: `remote_call`'s fields belong to the pool and are read and
// written under its lock, except `job`/`target` (fixed at creation) and the
// target's `stopper`/`call_id` (set before the call's handle is returned to
// its caller, read only by calls on that handle).

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/internal/deadline.hpp"
#include "runtime/internal/future_state.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/internal/remote_registry.hpp"
#include "runtime/offload.hpp"

namespace weave::internal {

/// Stops a started remote call (the pool that holds it).
class remote_stopper {
public:
  /// Asks the pool to stop call `id` for `cause`; false if it cannot (the
  /// call is not running there, or the pool cannot stop a running job).
  virtual bool stop_remote(uint64_t id, errc cause) noexcept = 0;

protected:
  ~remote_stopper() = default;
};

/// Receives the outcome of a remote call.
class remote_target {
public:
  /// Decodes `bytes` as the result and publishes it (an undecodable result
  /// is published as `registry_mismatch`). Only after a grant.
  virtual void complete(const std::vector<char>& bytes) noexcept = 0;

  /// The pool that may stop the call once it started, and its id there.
  std::weak_ptr<remote_stopper> stopper;
  uint64_t call_id = 0;

protected:
  ~remote_target() = default;

  bool stop_remote(errc cause) noexcept {
    auto pool = stopper.lock();
    return pool != nullptr && pool->stop_remote(call_id, cause);
  }
};

struct remote_call {
  uint64_t id = 0;
  const job_entry* entry = nullptr;
  std::vector<char> args;
  job_ptr job;
  remote_target* target = nullptr;
  steady_clock::time_point deadline = steady_clock::time_point::max();
  /// The slot of the worker holding it, or -1 while queued here.
  int slot = -1;
  /// Granted to a worker (its job left `queued`): may have run.
  bool started = false;
  /// Retried once already after losing its worker.
  bool retried = false;
  /// Its cancellation while it ran was requested (its worker is killed at
  /// the end of the grace period unless it finishes first).
  bool cancel_requested = false;
  /// Answered and out of the pool's tables.
  bool done = false;
  /// A process pool asked its worker to drop the claimed call (not started
  /// there yet?) and waits for the answer.
  bool revoking = false;
  /// Why it asked first: `cancelled` or `timeout` (the answer if dropped).
  errc revoke_cause = errc::cancelled;
  /// Its caller cancelled it after a worker claimed it.
  bool cancel_wanted = false;
  /// Granted to a worker that was lost since: it may have run there.
  bool granted_before = false;
  /// Retried and sent to its next worker, not claimed there yet: a revoke
  /// may overtake it, so the worker's "runs" means "not seen yet" (the
  /// revoke is sent again).
  bool regranting = false;
  /// Granted by its current worker's slot (counted in its grants).
  bool holds_grant = false;
  /// Granted as it was sent, its message not yet handed to CAF: a revoke
  /// could overtake it, so one asked for meanwhile waits until it is.
  bool in_transit = false;
  /// A revoke asked for while `in_transit`.
  bool revoke_deferred = false;
};

using remote_call_ptr = std::shared_ptr<remote_call>;

/// A remote call answering a `future<R>`.
template <class Job>
class remote_future_job final : public future_state<typename Job::result_type>,
                                public job,
                                public remote_target {
public:
  using result_type = typename Job::result_type;

  bool run() noexcept override {
    return false; // runs in a worker process, never here
  }

  bool drop(caf::error reason) noexcept override {
    return this->set_error(std::move(reason));
  }

  /// Before a worker started it: it never runs. After: the pool may stop
  /// it (see process_pool.hpp).
  bool cancel(caf::error reason) noexcept override {
    if (cancel_with(std::move(reason)))
      return true;
    if (this->ready())
      return false;
    return stop_running(errc::cancelled);
  }

  bool request_stop(errc cause) noexcept override {
    return this->stop_remote(cause);
  }

  void complete(const std::vector<char>& bytes) noexcept override {
    typename Job::value_type value{};
    if (auto err = Job::decode_result(bytes, value)) {
      this->set_error(make_error(errc::registry_mismatch,
                                 "cannot decode a job's result: "
                                   + render(err)));
      return;
    }
    if constexpr (std::is_void<result_type>::value)
      this->set_value();
    else
      this->set_value(std::move(value));
  }

protected:
  void ref_job() const noexcept override {
    this->ref();
  }

  void deref_job() const noexcept override {
    this->deref();
  }

private:
  friend void intrusive_ptr_add_ref(const remote_future_job* j) noexcept {
    j->ref();
  }

  friend void intrusive_ptr_release(const remote_future_job* j) noexcept {
    j->deref();
  }
};

/// A remote call answering an actor's `offload` (a response message).
template <class Job>
class remote_actor_job final : public actor_job<typename Job::result_type>,
                               public remote_target {
public:
  using result_type = typename Job::result_type;
  using super = actor_job<result_type>;

  using super::super;

  bool run() noexcept override {
    return false;
  }

  bool request_stop(errc cause) noexcept override {
    return this->stop_remote(cause);
  }

  void complete(const std::vector<char>& bytes) noexcept override {
    typename Job::value_type value{};
    if (auto err = Job::decode_result(bytes, value)) {
      this->send(make_error(errc::registry_mismatch,
                            "cannot decode a job's result: " + render(err)));
      return;
    }
    this->value_.emplace(std::move(value));
    this->send(job_done{job_ptr{this}});
  }
};

} // namespace weave::internal
