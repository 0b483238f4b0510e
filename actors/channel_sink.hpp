#pragma once

/// `spawn_channel_sink`: an actor that feeds a channel — the last actor of a
/// thread → actor → actor → thread pipeline.
///
///     auto sink = spawn_channel_sink(rt, output);
///     self->request(sink, infinite, item);   // acknowledged once accepted
///
/// Every `T` it receives is put into `output` without blocking the actor:
/// the request is acknowledged (an empty reply) once the channel has accepted
/// the item, so while `output` is full the senders' requests stay unanswered
/// — the backpressure travels upstream. Items are accepted in the order they
/// arrived. A `channel_closed` message (as a source sends at the end of its
/// input) closes `output` after every earlier item, and the sink quits. If
/// `output` is closed by someone else, pending and later requests fail with
/// `closed`. If the sink dies (killed, say), requests of items still waiting
/// fail with its exit reason, and it closes `output` with that reason: its
/// consumers drain what is there, then see the end, instead of waiting for
/// ever.
///
/// Thread-safety: an actor.

#include <deque>
#include <memory>
#include <utility>

#include "caf/event_based_actor.hpp"
#include "caf/response_promise.hpp"

#include "runtime/channel.hpp"
#include "runtime/runtime.hpp"

namespace weave::actors {

template <class T>
caf::actor spawn_channel_sink(runtime& rt, channel<T> output) {
  return rt.system().spawn([output](caf::event_based_actor* self) mutable {
    struct state_t {
      std::deque<std::pair<T, caf::response_promise>> waiting;
      bool close_after = false;
    };
    auto st = std::make_shared<state_t>();
    // Answer what is still waiting when the sink dies (it runs on the
    // sink's own thread, as it ends).
    self->attach_functor([st, output](const caf::error& reason) mutable {
      auto err = reason ? reason
                        : make_error(errc::closed, "the channel sink ended");
      for (auto& waiting : st->waiting)
        waiting.second.deliver(err);
      st->waiting.clear();
      output.close(err);
    });
    // Moves waiting items into the channel until it is full again.
    auto drain = [=]() mutable {
      while (!st->waiting.empty()) {
        auto& [item, rp] = st->waiting.front();
        auto res = output.offer(self, std::move(item));
        if (res == channel_status::full)
          return; // a channel_writable message will come
        if (res == channel_status::ok)
          rp.deliver(caf::unit);
        else
          rp.deliver(make_error(errc::closed, "the sink's channel is closed"));
        st->waiting.pop_front();
      }
      if (st->close_after) {
        output.close();
        self->quit();
      }
    };
    self->become(
      [=](T& item) mutable {
        auto rp = self->make_response_promise();
        st->waiting.emplace_back(std::move(item), rp);
        if (st->waiting.size() == 1)
          drain();
        return rp;
      },
      [=](channel_writable&) mutable { drain(); },
      [=](channel_closed&) mutable {
        st->close_after = true;
        drain();
      });
  });
}

} // namespace weave::actors
