// A process pool's batched claims and results (see process_pool_batch.hpp
// and process_pool_impl.hpp): each batch is handled in one critical
// section, then one dispatch, then the answers after unlocking.

#include "runtime/internal/process_pool_batch.hpp"

#include <algorithm>

#include "caf/send.hpp"

#include "runtime/internal/process_pool_impl.hpp"

namespace weave::internal {

std::vector<char> process_pool_impl::on_claims(uint32_t slot, uint32_t gen,
                                               const std::vector<char>& bytes) {
  std::vector<uint64_t> ids;
  if (!decode_batch(bytes, ids))
    return {}; // malformed: nothing granted, the worker drops them
  std::vector<char> granted(ids.size(), 0);
  std::vector<outgoing> out;
  std::vector<answer> answers;
  // Granted calls with a deadline: revoked then unless answered first.
  std::vector<std::pair<uint64_t, steady_clock::time_point>> due;
  caf::actor client;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!claim_locked(ids[i], slot, gen, out, answers))
        continue;
      granted[i] = 1;
      auto& c = *calls_.at(ids[i]);
      if (c.deadline != steady_clock::time_point::max())
        due.emplace_back(c.id, c.deadline);
    }
    dispatch_locked(out);
    if (!due.empty())
      client = client_;
  }
  send_all(out);
  deliver(answers);
  if (client) {
    auto now = steady_clock::now();
    for (auto& [id, at] : due)
      caf::delayed_anon_send(
        client,
        std::chrono::duration_cast<caf::timespan>(
          std::max(at - now, steady_clock::duration{0})),
        revoke_due_atom::value, id, slot, gen);
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
