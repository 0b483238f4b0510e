#include "actors/resolver.hpp"

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "caf/actor_cast.hpp"
#include "caf/actor_system.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/spawn_options.hpp"
#include "caf/stateful_actor.hpp"

#include "actors/internal/resolver_state.hpp"
#include "runtime/error.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/loop_jobs.hpp"
#include "runtime/internal/runtime_access.hpp"

namespace weave::actors {

namespace {

using namespace internal_resolver;

using expire_atom = caf::atom_constant<caf::atom("resexpire")>;

/// A request the actor still owes an answer.
struct pending_request {
  caf::typed_response_promise<addresses> rp;
  std::string host;
};

struct resolver_actor_state {
  std::unordered_map<uint64_t, pending_request> pending;
  uint64_t next_id = 0;
  resolver_stats answered;
  static inline const char* name = "weave.resolver";

  /// Answers what is still pending as the actor ends, however it ends
  /// (`exit_reason::kill` skips the exit handler).
  ~resolver_actor_state() {
    for (auto& [id, p] : pending)
      p.rp.deliver(make_error(errc::shut_down,
                              "resolve '" + p.host + "': the resolver ended"));
  }
};

using resolver_self = caf::stateful_actor<resolver_actor_state>;

caf::behavior resolver_behavior(resolver_self* self,
                                std::shared_ptr<resolver_state> st) {
  self->attach_functor([st](const caf::error&) { st->close(); });
  // Answers every pending request with `err` (the actor is ending).
  auto fail_all = [self](const std::string& why) {
    auto pending = std::move(self->state.pending);
    self->state.pending.clear();
    for (auto& [id, p] : pending)
      p.rp.deliver(make_error(errc::shut_down,
                              "resolve '" + p.host + "': " + why));
  };
  self->set_exit_handler([self, fail_all](caf::exit_msg& msg) {
    fail_all("the resolver ended");
    self->quit(msg.reason);
  });
  return {
    [self, st](resolve_atom, std::string& host, uint16_t port,
               caf::timespan d) {
      auto rp = self->make_response_promise<addresses>();
      if (d < caf::timespan::zero()) {
        rp.deliver(make_error(errc::invalid_argument,
                              "resolve '" + host + "': negative deadline"));
        return rp;
      }
      if (host.empty()) {
        rp.deliver(make_error(errc::invalid_argument, "resolve: empty host"));
        return rp;
      }
      auto id = ++self->state.next_id;
      try {
        if (!st->submit(lookup{id, host, port})) {
          rp.deliver(make_error(errc::shut_down,
                                "resolve '" + host
                                  + "': the resolver is shut down"));
          return rp;
        }
      } catch (const weave::exception& e) {
        rp.deliver(e.error());
        return rp;
      }
      self->state.pending.emplace(id, pending_request{rp, std::move(host)});
      if (d < internal::max_timer_delay) // longer: no deadline at all
        self->delayed_send(self, d, expire_atom::value, id);
      return rp;
    },
    [self, st](resolver_stats_atom) {
      auto s = st->stats();
      s.resolved = self->state.answered.resolved;
      s.failed = self->state.answered.failed;
      s.timed_out = self->state.answered.timed_out;
      return s;
    },
    [self](resolved_atom, uint64_t id, addresses& xs) {
      auto i = self->state.pending.find(id);
      if (i == self->state.pending.end())
        return;
      ++self->state.answered.resolved;
      i->second.rp.deliver(std::move(xs));
      self->state.pending.erase(i);
    },
    [self](resolved_atom, uint64_t id, caf::error& err) {
      auto i = self->state.pending.find(id);
      if (i == self->state.pending.end())
        return;
      ++self->state.answered.failed;
      i->second.rp.deliver(std::move(err));
      self->state.pending.erase(i);
    },
    [self, st](expire_atom, uint64_t id) {
      auto i = self->state.pending.find(id);
      if (i == self->state.pending.end())
        return;
      auto why = st->expire(id);
      ++self->state.answered.timed_out;
      i->second.rp.deliver(make_error(
        errc::timeout, "resolve '" + i->second.host
                         + "': deadline passed, " + why));
      self->state.pending.erase(i);
    },
    [self, fail_all](close_atom) {
      fail_all("the runtime is shutting down");
      self->quit();
    },
  };
}

} // namespace

resolver_actor spawn_resolver(runtime& rt, resolver_options opts) {
  if (opts.threads == 0)
    raise(make_error(errc::invalid_argument,
                     "spawn_resolver: threads must be at least 1"));
  auto st = std::make_shared<resolver_state>(std::move(opts));
  caf::actor actor;
  internal::runtime_access::start_component(
    rt, st, [&](caf::actor_system& sys) {
      // On the scheduler: its handlers never block (lookups run on the
      // resolver's threads and come back as messages).
      actor = sys.spawn<caf::hidden>(resolver_behavior, st);
      st->set_actor(sys, actor);
    });
  return caf::actor_cast<resolver_actor>(std::move(actor));
}

} // namespace weave::actors
