#pragma once

/// `spawn_channel_source`: an actor that drains a channel into another actor,
/// with credit — the first stage of a thread → actor → actor → thread
/// pipeline.
///
///     auto src = spawn_channel_source(rt, input, stage, 64);
///
/// The source subscribes to `input` and sends every item to `dest` as a
/// request, keeping at most `window` requests unanswered: `dest` acknowledges
/// an item by returning from its handler (a `void` handler, or one that
/// `delegate`s to the next stage, whose reply then acknowledges). Items reach
/// `dest` in the channel's order. So a slow `dest` holds back the source,
/// which holds back the channel, which holds back the producer threads.
/// When `input` closes and every item has been acknowledged, the source sends
/// `channel_closed` to `dest` and quits. If `dest` fails a request, the source
/// closes `input` with that error (its producers are released) and quits
/// with it.
/// If `dest` dies (its unanswered requests would never be answered), the
/// source closes `input` with `dest`'s exit reason and quits with it. If the source
/// itself dies, a batch it had not yet read goes back to `input`.
///
/// Thread-safety: an actor.

#include <cstddef>
#include <deque>
#include <memory>

#include "caf/event_based_actor.hpp"
#include "caf/stateful_actor.hpp"

#include "runtime/channel.hpp"
#include "runtime/runtime.hpp"

namespace weave::actors {

template <class T>
caf::actor spawn_channel_source(runtime& rt, channel<T> input, caf::actor dest,
                                size_t window) {
  if (window == 0)
    raise(make_error(errc::invalid_argument,
                     "spawn_channel_source: window must be at least 1"));
  return rt.system().spawn([input, dest,
                            window](caf::event_based_actor* self) mutable {
    // Batches are kept until all their items are acknowledged: their credit
    // returns to the channel only then.
    struct state_t {
      std::deque<std::pair<channel_batch<T>, size_t>> open; // batch, unacked
      bool input_closed = false;
    };
    auto st = std::make_shared<state_t>();
    auto maybe_finish = [=] {
      if (st->input_closed && st->open.empty()) {
        self->send(dest, channel_closed{input.id()});
        self->quit();
      }
    };
    input.subscribe(self, window);
    self->monitor(dest);
    auto in = std::make_shared<channel<T>>(input); // CAF calls it as const
    self->set_down_handler([=](caf::down_msg& dm) {
      if (dm.source != dest)
        return;
      in->close(dm.reason ? dm.reason
                          : make_error(errc::closed,
                                       "the source's destination ended"));
      self->quit(dm.reason);
    });
    self->become(
      [=](channel_batch<T>& batch) mutable {
        st->open.emplace_back(batch, batch.size());
        for (auto& item : batch.items())
          self->request(dest, caf::infinite, std::move(item))
            .then(
              [=]() {
                // Any acknowledgement retires one unit of the oldest open
                // batch: credit returns in the channel's order whatever the
                // order of the replies.
                if (--st->open.front().second == 0)
                  st->open.pop_front();
                maybe_finish();
              },
              [=](caf::error& err) mutable {
                input.close(err);
                self->quit(err);
              });
      },
      [=](channel_closed&) {
        st->input_closed = true;
        maybe_finish();
      });
  });
}

} // namespace weave::actors
