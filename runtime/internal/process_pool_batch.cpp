// A process pool's batched claims and results (see process_pool_batch.hpp
// and process_pool_impl.hpp): each batch is handled in one critical
// section, then one dispatch, then the answers after unlocking. A claim
// is granted per call (`claim_locked`), and a granted call with a deadline
// gets a revoke entry on the runtime's deadline timer.

#include "runtime/internal/process_pool_batch.hpp"

#include <algorithm>

#include "caf/make_counted.hpp"

#include "runtime/internal/deadline_timer.hpp"
#include "runtime/internal/process_pool_impl.hpp"
#include "runtime/internal/runtime_access.hpp"

namespace weave::internal {

namespace {

/// The runtime timer's entry for the deadline of a granted call: when due
/// (the timer drops it, `cancel_with(timeout)` calls `drop`) it revokes the
/// call. It holds its pool and call weakly, so neither a pool nor its
/// client actor waits for a deadline; the timer sweeps it once the call is
/// answered (out of the pool's tables, so gone) and drops it at shutdown.
class revoke_watch final : public counted_job {
public:
  revoke_watch(std::weak_ptr<process_pool_impl> pool,
               std::weak_ptr<remote_call> call, uint32_t slot, uint32_t gen)
    : pool_(std::move(pool)), call_(std::move(call)), slot_(slot), gen_(gen) {
    // nop
  }

  bool run() noexcept override {
    return true; // never queued on a pool
  }

  bool drop(caf::error) noexcept override {
    auto pool = pool_.lock();
    auto call = call_.lock();
    if (pool != nullptr && call != nullptr)
      pool->on_revoke_due(call->id, slot_, gen_);
    return true;
  }

  bool timer_entry_live() const noexcept override {
    return current_state() == state::queued && !call_.expired();
  }

private:
  std::weak_ptr<process_pool_impl> pool_;
  std::weak_ptr<remote_call> call_;
  uint32_t slot_;
  uint32_t gen_;
};

} // namespace

bool process_pool_impl::claim_locked(uint64_t id, uint32_t slot, uint32_t gen,
                                     std::vector<outgoing>& out,
                                     std::vector<answer>& answers) {
  auto i = calls_.find(id);
  if (i == calls_.end() || slot >= slots_.size())
    return false;
  auto c = i->second;
  auto& s = slots_[slot];
  if (c->slot != static_cast<int>(slot) || s.generation != gen)
    return false;
  c->regranting = false;
  // A started call claimed again was retried: it may have run on its lost
  // worker. It does not run again once due or cancelled.
  bool due = c->deadline <= steady_clock::now();
  bool cancelled_retry = c->started && c->cancel_wanted;
  if (!due && !cancelled_retry && (c->started || c->job->try_start())) {
    c->started = true;
    if (!c->holds_grant) {
      c->holds_grant = true;
      ++s.granted;
    }
    return true;
  }
  // Cancelled, timed out, or due (the timer has not answered it yet): it
  // never runs (again).
  retire_locked(i, s);
  if (cancelled_retry && !due)
    ++counts_.cancelled;
  if (due && c->started)
    answers.push_back(
      {c, make_error(errc::timeout, "maybe executed: job '" + c->entry->name
                                      + "' was retried after its worker was "
                                        "lost and its timeout passed before "
                                        "the next worker started it")});
  else if (due)
    answers.push_back({std::move(c),
                       make_error(errc::timeout,
                                  "not started: no worker of the process "
                                  "pool started the job within its "
                                  "timeout")});
  else if (cancelled_retry)
    answers.push_back(
      {c, make_error(errc::cancelled, "maybe executed: job '" + c->entry->name
                                        + "' was retried after its worker "
                                          "was lost and cancelled before "
                                          "the next worker started it")});
  else
    out.push_back({caf::actor{}, 0, std::string{}, {}, std::move(c)});
  return false;
}

process_pool_impl::call_map::iterator
process_pool_impl::held_locked(uint64_t id, uint32_t slot, uint32_t gen) {
  auto i = calls_.find(id);
  if (i == calls_.end() || slot >= slots_.size()
      || i->second->slot != static_cast<int>(slot)
      || slots_[slot].generation != gen)
    return calls_.end();
  return i;
}

remote_call_ptr process_pool_impl::done_locked(uint64_t id, uint32_t slot,
                                               uint32_t gen) {
  auto i = held_locked(id, slot, gen);
  if (i == calls_.end())
    return nullptr;
  auto c = i->second;
  retire_locked(i, slots_[slot]);
  ++counts_.completed;
  return c;
}

std::vector<char> process_pool_impl::on_claims(uint32_t slot, uint32_t gen,
                                               const std::vector<char>& bytes) {
  std::vector<uint64_t> ids;
  if (!decode_batch(bytes, ids))
    return {}; // malformed: nothing granted, the worker drops them
  std::vector<char> granted(ids.size(), 0);
  std::vector<outgoing> out;
  std::vector<answer> answers;
  // Granted calls with a deadline: revoked then unless answered first.
  std::vector<std::pair<std::weak_ptr<remote_call>, steady_clock::time_point>>
    due;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!claim_locked(ids[i], slot, gen, out, answers))
        continue;
      granted[i] = 1;
      auto& c = calls_.at(ids[i]);
      if (c->deadline != steady_clock::time_point::max())
        due.emplace_back(c, c->deadline);
    }
    dispatch_locked(out);
  }
  send_all(out);
  deliver(answers);
  for (auto& entry : due)
    if (auto call = entry.first.lock()) // else answered already
      arm_revoke_watch(std::move(call), slot, gen);
  return granted;
}

void process_pool_impl::arm_revoke_watch(remote_call_ptr call, uint32_t slot,
                                         uint32_t gen) {
  auto timer = runtime_access::timer(*rt_);
  if (!timer || !call)
    return;
  try {
    auto at = call->deadline;
    auto watch = caf::make_counted<revoke_watch>(weak_from_this(),
                                                 std::move(call), slot, gen);
    watch->deadline = at;
    timer->arm(std::move(watch));
  } catch (...) {
    // Out of memory: the call runs when its worker gets to it.
  }
}

void process_pool_impl::on_dones(uint32_t slot, uint32_t gen,
                                 const std::vector<char>& bytes) {
  std::vector<done_item> items;
  if (!decode_batch(bytes, items))
    return;
  std::vector<outgoing> out;
  std::vector<std::pair<remote_call_ptr, std::vector<char>*>> completed;
  completed.reserve(items.size());
  {
    std::unique_lock<std::mutex> guard{mtx_};
    ++counts_.result_messages;
    for (auto& x : items)
      if (auto c = done_locked(x.id, slot, gen))
        completed.emplace_back(std::move(c), &x.result);
    dispatch_locked(out);
  }
  send_all(out);
  for (auto& [call, result] : completed)
    call->target->complete(*result);
}

static_assert(steady_clock::time_point::max().time_since_epoch().count()
                == no_deadline,
              "a call without a deadline is sent with no_deadline");

void process_pool_impl::on_lates(uint32_t slot, uint32_t gen,
                                 const std::vector<char>& bytes) {
  std::vector<uint64_t> ids;
  if (!decode_batch(bytes, ids))
    return;
  std::vector<outgoing> out;
  std::vector<answer> answers;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    ++counts_.result_messages;
    for (auto id : ids) {
      auto i = held_locked(id, slot, gen);
      if (i == calls_.end())
        continue; // answered already (its worker lost meanwhile)
      auto c = i->second;
      retire_locked(i, slots_[slot]);
      ++counts_.revoked;
      // A retried call may have run on the worker it lost. One with a
      // revoke on its way is answered as that revoke would have been (its
      // cancel or its deadline, whichever asked first).
      auto mark = c->granted_before ? "maybe executed: job '"
                                    : "not started: job '";
      auto cause = c->revoking        ? c->revoke_cause
                   : c->cancel_wanted ? errc::cancelled
                                      : errc::timeout;
      std::string where = cause == errc::cancelled
                            ? "' was cancelled and dropped by its worker "
                              "before it began"
                            : "' timed out before its worker began it";
      if (c->granted_before)
        where += " (it may have run on a worker lost before)";
      answers.push_back(
        {c, make_error(cause, std::string{mark} + c->entry->name + where)});
    }
    dispatch_locked(out);
  }
  send_all(out);
  deliver(answers);
}

} // namespace weave::internal
