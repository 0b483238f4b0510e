#pragma once

// Internal: `submit` and `offload` of a registered job to any pool that
// sends its jobs to other processes (a remote_pool; the same shape as a
// process_pool's). A pool type `Pool` opts in by specialising nothing: it
// needs a member `enqueue(remote_call_ptr, caf::timespan)` reachable
// through `remote_enqueue<Pool>::enqueue` (a friend struct).
//
// The caller's job (a future's state or an actor's response) is made here,
// its arguments encoded here (an encoding error answers it at once), and
// the call handed to the pool, which answers it exactly once.

#include <optional>
#include <utility>

#include "caf/message_priority.hpp"

#include "runtime/future.hpp"
#include "runtime/internal/remote_job.hpp"
#include "runtime/offload.hpp"
#include "runtime/registered_job.hpp"

namespace weave::internal {

/// Hands a call to `Pool` (specialised by each pool as a friend).
template <class Pool>
struct remote_enqueue;

template <class Pool, class Sig>
auto remote_submit(Pool& pool, bound_job<Sig> call,
                   std::optional<offload_timeout> timeout, const char* who) {
  using job_type = registered_job<Sig>;
  using r = typename job_type::result_type;
  auto st = caf::make_counted<remote_future_job<job_type>>();
  auto fut = make_future<r>(st);
  if (timeout && timeout->refused) {
    st->cancel_with(make_error(errc::invalid_argument,
                               std::string{who} + "::submit: negative timeout"));
    return fut;
  }
  auto c = std::make_shared<remote_call>();
  c->entry = &call.job().entry();
  c->job = st;
  c->target = st.get();
  if (timeout && timeout->value)
    c->deadline = deadline_after(*timeout->value);
  try {
    c->args = call.encode_args();
  } catch (const exception& e) {
    st->cancel_with(e.error());
    return fut;
  }
  remote_enqueue<Pool>::enqueue(pool, std::move(c),
                                timeout && timeout->value
                                  ? *timeout->value
                                  : caf::timespan::max());
  return fut;
}

template <class Pool, class Self, class Sig>
auto remote_offload(Self* self, Pool& pool, bound_job<Sig> call,
                    offload_timeout timeout) {
  using job_type = registered_job<Sig>;
  using t = typename job_type::result_type;
  auto rid = self->new_request_id(caf::message_priority::normal);
  auto j = caf::make_counted<remote_actor_job<job_type>>(self->ctrl(),
                                                         rid.response_id());
  offload_handle<Self, t> handle{self, rid, j};
  if (timeout.refused) {
    j->cancel_with(make_error(errc::invalid_argument,
                              "offload: negative timeout (or not a number)"));
    return handle;
  }
  auto c = std::make_shared<remote_call>();
  c->entry = &call.job().entry();
  c->job = j;
  c->target = j.get();
  if (timeout.value) {
    c->deadline = saturating_add(steady_clock::now(), *timeout.value);
    self->request_response_timeout(caf::duration{*timeout.value}, rid);
  }
  try {
    c->args = call.encode_args();
  } catch (const exception& e) {
    j->cancel_with(e.error());
    return handle;
  }
  remote_enqueue<Pool>::enqueue(pool, std::move(c),
                                timeout.value ? *timeout.value
                                              : caf::timespan::max());
  return handle;
}

} // namespace weave::internal
