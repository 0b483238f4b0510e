// Cancelling and timing out a claimed job of a process_pool: its worker is
// asked to revoke it; a job that runs already is stopped by killing its
// worker at the end of the runtime's cancel grace. Losing a worker: its
// jobs are answered or retried (see process_pool_impl.hpp).

#include <signal.h>

#include <algorithm>
#include <string>

#include "caf/send.hpp"

#include "runtime/internal/pool_hooks.hpp"
#include "runtime/internal/process_pool_batch.hpp"
#include "runtime/internal/process_pool_impl.hpp"

namespace weave::internal {

caf::actor process_pool_impl::revoke_locked(uint64_t id, uint32_t slot,
                                            uint32_t gen, errc cause) {
  auto i = calls_.find(id);
  if (i == calls_.end() || slot >= slots_.size())
    return {};
  auto& c = *i->second;
  auto& s = slots_[slot];
  if (c.done || !c.started || c.slot != static_cast<int>(slot)
      || s.generation != gen || s.lost || !s.actor)
    return {};
  if (cause == errc::cancelled)
    c.cancel_wanted = true;
  if (c.revoking)
    return {}; // in flight
  // A retried call not claimed yet by its new worker is revoked too: if
  // the revoke overtakes the call, the worker's "runs" is ignored and the
  // claim refuses it (cancelled, or due).
  c.revoking = true;
  c.revoke_cause = cause;
  if (c.in_transit) {
    // Granted as sent, its message not with CAF yet: the revoke goes
    // after it (send_all).
    c.revoke_deferred = true;
    return {};
  }
  return s.actor;
}

void process_pool_impl::send_revoke(const caf::actor& worker,
                                    uint64_t id) noexcept {
  try {
    caf::anon_send(worker, revoke_atom::value, id);
  } catch (...) {
    // Out of memory: the call is answered when it ends or its worker is
    // lost.
  }
}

bool process_pool_impl::stop_remote(uint64_t id, errc cause) noexcept {
  if (cause != errc::cancelled)
    return false;
  caf::actor worker;
  remote_call_ptr requeued;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    auto i = calls_.find(id);
    if (stopping_ || !client_ || i == calls_.end() || !i->second->started)
      return false;
    auto& c = *i->second;
    if (c.slot < 0) {
      // A retried call waiting here again: it does not run again (the
      // dispatcher skips it).
      requeued = i->second;
      c.done = true;
      calls_.erase(i);
      ++counts_.cancelled;
    } else if (c.cancel_wanted) {
      // Asked already. Still held here with no revoke pending, its worker
      // answered that it runs: with several threads per worker it runs on.
      return opts_.threads_per_worker == 1 || c.revoking || c.regranting;
    } else {
      auto slot = static_cast<uint32_t>(c.slot);
      worker = revoke_locked(id, slot, slots_[slot].generation, cause);
      if (!worker && !c.revoking && !c.regranting)
        return false;
    }
  }
  if (requeued) {
    requeued->job->drop(make_error(errc::cancelled,
                                   "job '" + requeued->entry->name
                                     + "' was cancelled while it waited to "
                                       "be retried"));
    return true;
  }
  if (worker)
    send_revoke(worker, id);
  return true;
}

void process_pool_impl::on_revoke_due(uint64_t id, uint32_t slot,
                                      uint32_t gen) {
  caf::actor worker;
  remote_call_ptr requeued;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (slot == any_slot) {
      // A retried call: wherever it is now.
      auto i = calls_.find(id);
      if (i == calls_.end() || i->second->done)
        return;
      auto& c = *i->second;
      if (c.slot < 0) {
        // Waiting here to be retried: it does not run again (the
        // dispatcher skips it).
        requeued = i->second;
        c.done = true;
        calls_.erase(i);
      } else {
        slot = static_cast<uint32_t>(c.slot);
        gen = slots_[slot].generation;
      }
    }
    if (!requeued)
      worker = revoke_locked(id, slot, gen, errc::timeout);
  }
  if (requeued) {
    requeued->job->drop(make_error(
      errc::timeout, "maybe executed: job '" + requeued->entry->name
                       + "' timed out while it waited to be retried after "
                         "its worker was lost"));
    return;
  }
  if (worker) {
    run_pool_hook(pool_hook_point::deadline_revoke, opts_.name);
    send_revoke(worker, id);
  }
}

void process_pool_impl::on_revoked(uint64_t id, uint32_t slot, uint32_t gen,
                                   bool dropped) {
  std::vector<outgoing> out;
  std::vector<answer> answers;
  caf::actor client;
  caf::actor again;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    auto i = calls_.find(id);
    if (i == calls_.end() || slot >= slots_.size()
        || i->second->slot != static_cast<int>(slot)
        || slots_[slot].generation != gen || !i->second->revoking)
      return; // answered meanwhile (its result, its worker lost)
    auto c = i->second;
    c->revoking = false;
    if (dropped) {
      retire_locked(i, slots_[slot]);
      ++counts_.revoked;
      dispatch_locked(out);
      auto why = c->revoke_cause == errc::timeout
                   ? "its timeout passed"
                   : "it was cancelled";
      // A retried call may have run on the worker it lost.
      auto mark = c->granted_before ? "maybe executed: job '"
                                    : "not started: job '";
      auto where = c->granted_before
                     ? "' was dropped by its worker before it started there "
                       "(it may have run on a worker lost before): "
                     : "' was dropped by its worker before it started: ";
      answers.push_back(
        {c, make_error(c->revoke_cause,
                       std::string{mark} + c->entry->name + where + why)});
    } else if (c->regranting) {
      // The revoke overtook the retried call on its way to this worker (it
      // cannot run there before its claim, which would have come first):
      // asked again, it finds the call there and drops it; or the claim
      // comes first and refuses it (cancelled, or due).
      c->revoking = true;
      again = slots_[slot].actor;
    } else if (c->cancel_wanted && !c->cancel_requested
               && opts_.threads_per_worker == 1 && !stopping_) {
      // It runs: its worker is killed unless it ends within the grace.
      c->cancel_requested = true;
      client = client_;
    }
  }
  send_all(out);
  deliver(answers);
  if (again)
    send_revoke(again, id);
  if (client) {
    try {
      caf::delayed_anon_send(client, cancel_grace_, cancel_atom::value, id,
                             slot, gen);
    } catch (...) {
      // Out of memory: the job runs on.
    }
  }
}

void process_pool_impl::on_cancel_grace(uint64_t id, uint32_t slot,
                                        uint32_t gen) {
  if (slot < slots_.size())
    lose_worker(slot, gen,
                "was killed: a job it ran was cancelled and did not finish "
                "within the cancel grace period",
                id);
}

// -- losing a worker ----------------------------------------------------------

void process_pool_impl::on_down(const caf::actor_addr& who,
                                const caf::error& reason) {
  size_t index = 0;
  uint32_t gen = 0;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    for (; index < slots_.size(); ++index)
      if (slots_[index].actor && slots_[index].actor.address() == who)
        break;
    if (index == slots_.size())
      return;
    gen = slots_[index].generation;
  }
  lose_worker(index, gen, "its connection dropped (" + render(reason) + ")");
}

void process_pool_impl::lose_worker(size_t index, uint32_t gen,
                                    const std::string& why,
                                    uint64_t cancelled) {
  std::vector<outgoing> out;
  std::vector<answer> answers;
  std::vector<remote_call_ptr> rewatch;
  caf::actor gone;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    auto& s = slots_[index];
    if (s.generation != gen || s.lost
        || (cancelled != 0 && s.ids.count(cancelled) == 0))
      return;
    s.lost = true;
    if (s.joined) {
      s.joined = false;
      --joined_;
    }
    gone = std::move(s.actor);
    s.actor = caf::actor{};
    if (s.pid != 0)
      ::kill(s.pid, SIGKILL); // frozen or cut off: make sure it is gone
    ++counts_.workers_lost;
    auto calls = take_calls_locked(s);
    auto where = "worker " + std::to_string(index) + " (pid "
                 + std::to_string(s.pid) + ") " + why;
    auto now = steady_clock::now();
    // Retried calls go back to the head of the queue, in their order.
    for (auto i = calls.rbegin(); i != calls.rend(); ++i) {
      auto& c = *i;
      // A revoke's answer from this worker will not come (or is ignored).
      c->revoking = false;
      c->regranting = false;
      // The cancelled call, or one whose caller cancelled it on this
      // worker (running, or its revoke in flight): not retried.
      if (c->id == cancelled || c->cancel_requested || c->cancel_wanted) {
        c->done = true;
        calls_.erase(c->id);
        ++counts_.cancelled;
        auto how = c->cancel_requested ? "' was cancelled while it ran; its "
                                       : "' was cancelled; its ";
        answers.push_back(
          {c, make_error(errc::cancelled, "job '" + c->entry->name + how
                                            + where)});
        continue;
      }
      if (c->entry->idempotent && !c->retried && !stopping_
          && c->deadline <= now) {
        // Its timeout passed: not retried after it (it would run late).
        c->done = true;
        calls_.erase(c->id);
        auto text = std::string{c->started || c->granted_before
                                  ? "maybe executed"
                                  : "not started"}
                    + ": job '" + c->entry->name + "' timed out: it was held by "
                    + where + " after its timeout passed";
        answers.push_back({c, make_error(errc::timeout, std::move(text))});
        continue;
      }
      if (c->entry->idempotent && !c->retried && !stopping_) {
        c->retried = true;
        c->granted_before = c->granted_before || c->started;
        ++counts_.retried;
        queue_.push_front(c);
        // Its timeout bounds the retry too, wherever the call waits.
        if (c->deadline != steady_clock::time_point::max())
          rewatch.push_back(c);
        continue;
      }
      c->done = true;
      calls_.erase(c->id);
      ++counts_.lost;
      auto text = std::string{c->started || c->granted_before
                                ? "maybe executed"
                                : "not started"}
                  + ": job '" + c->entry->name + "' was held by " + where;
      answers.push_back({c, make_error(errc::worker_lost, std::move(text))});
    }
    std::reverse(answers.begin(), answers.end());
    dispatch_locked(out);
  }
  send_all(out);
  deliver(answers);
  for (auto& c : rewatch)
    arm_revoke_watch(std::move(c), any_slot, 0);
}

} // namespace weave::internal
