// A process pool's batched claims and results (see process_pool_batch.hpp
// and process_pool_impl.hpp): each batch is handled in one critical
// section, then one dispatch, then the answers after unlocking.

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
  if (!due.empty()) {
    if (auto timer = runtime_access::timer(*rt_)) {
      for (auto& [call, at] : due) {
        try {
          auto watch = caf::make_counted<revoke_watch>(weak_from_this(),
                                                       std::move(call), slot,
                                                       gen);
          watch->deadline = at;
          timer->arm(std::move(watch));
        } catch (...) {
          // Out of memory: the call runs when its worker gets to it.
        }
      }
    }
  }
  return granted;
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
    for (auto& x : items)
      if (auto c = done_locked(x.id, slot, gen))
        completed.emplace_back(std::move(c), &x.result);
    dispatch_locked(out);
  }
  send_all(out);
  for (auto& [call, result] : completed)
    call->target->complete(*result);
}

} // namespace weave::internal
