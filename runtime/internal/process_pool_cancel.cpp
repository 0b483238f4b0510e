// Cancelling a started job of a process_pool: its worker is killed at the
// end of the runtime's cancel grace (see process_pool_impl.hpp).

#include "caf/send.hpp"

#include "runtime/internal/process_pool_impl.hpp"

namespace weave::internal {

bool process_pool_impl::stop_remote(uint64_t id, errc cause) noexcept {
  if (cause != errc::cancelled)
    return false;
  uint32_t slot = 0;
  uint32_t gen = 0;
  caf::actor client;
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
    } else if (opts_.threads_per_worker != 1) {
      // Killing its worker would stop jobs nobody cancelled.
      return false;
    } else if (c.cancel_requested) {
      return true;
    } else {
      c.cancel_requested = true;
      slot = static_cast<uint32_t>(c.slot);
      gen = slots_[slot].generation;
      client = client_;
    }
  }
  if (requeued) {
    requeued->job->drop(make_error(errc::cancelled,
                                   "job '" + requeued->entry->name
                                     + "' was cancelled while it waited to "
                                       "be retried"));
    return true;
  }
  try {
    caf::delayed_anon_send(client, cancel_grace_, cancel_atom::value, id,
                           slot, gen);
  } catch (...) {
    return false; // out of memory: the job runs on
  }
  return true;
}

void process_pool_impl::on_cancel_grace(uint64_t id, uint32_t slot,
                                        uint32_t gen) {
  if (slot < slots_.size())
    lose_worker(slot, gen,
                "was killed: a job it ran was cancelled and did not finish "
                "within the cancel grace period",
                id);
}

} // namespace weave::internal
