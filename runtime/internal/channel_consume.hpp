#pragma once

// Internal: `channel<T>::consume`, a subscription whose messages are jobs
// for a loop.
//
// A batch job hands the items to `on_item` straight from the batch (boxed
// items are not moved out of their boxes). If `on_item` throws, the job
// stops there: the consumer leaves the channel, the items after the one
// that threw go back to the front of the channel in order
// (`channel_core::consumer_failed`), and then the future fails with the
// exception's error. The items before it, and the one that threw, count as
// consumed.

#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "caf/intrusive_ptr.hpp"
#include "caf/make_counted.hpp"
#include "caf/make_message.hpp"

#include "runtime/channel.hpp"
#include "runtime/error.hpp"
#include "runtime/future.hpp"
#include "runtime/internal/channel_batch_data.hpp"
#include "runtime/internal/channel_paced.hpp"
#include "runtime/internal/channel_slot.hpp"
#include "runtime/internal/channel_subscriber.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/loop.hpp"

namespace weave::internal {

/// The message that runs `fn` in a loop (a batch's or the end's delivery).
template <class Fn>
caf::message loop_job_message(Fn fn) {
  return caf::make_message(
    loop_message{caf::make_counted<post_job<Fn>>(std::move(fn))});
}

/// The `on_down` hook of a loop consumer: the loop stopped before the
/// channel ended, so `done` fails with `shut_down`.
inline auto fail_when_loop_stops(promise<size_t> done) {
  return [done](const caf::error& reason) mutable {
    std::string what = "the loop stopped before the channel ended";
    if (reason)
      what += " (" + render(reason) + ")";
    done.set_error(make_error(errc::shut_down, std::move(what)));
  };
}

/// Subscribes the loop of `cx` with an `on_item` that returns a future:
/// see channel_paced.hpp.
template <class T, class F>
future<size_t> consume_paced(channel_core<T>& core, loop_context& cx,
                             F on_item, size_t limit) {
  promise<size_t> done;
  auto result = done.get_future();
  auto consumer = std::make_shared<paced_consumer<T, F>>(std::move(on_item),
                                                         limit, done, cx);
  subscriber_hooks<T> hooks;
  hooks.wrap_batch = [consumer](caf::intrusive_ptr<batch_data<T>> b) {
    return loop_job_message([consumer, b{std::move(b)}]() mutable {
      consumer->take(std::move(b));
    });
  };
  hooks.wrap_end = [consumer] {
    return loop_job_message([consumer] { consumer->end(); });
  };
  hooks.on_down = fail_when_loop_stops(done);
  core.subscribe(cx.self(), limit, std::move(hooks));
  // Also after a failure (the consumer then left the channel, and with it
  // `on_down`), the loop's end must fail the result and give back the
  // batch held, whatever futures are still pending.
  std::weak_ptr<paced_consumer<T, F>> weak = consumer;
  cx.self()->attach_functor([weak](const caf::error&) {
    if (auto c = weak.lock())
      c->loop_ended();
  });
  return result;
}

/// Subscribes the loop of `cx`: every batch becomes a job that runs
/// `on_item` on each item in the loop; the end of the stream completes the
/// future with the count; the loop's end first fails it with `shut_down`;
/// an exception from `on_item` fails it with that exception's error.
template <class T, class F>
future<size_t> consume_each(channel_core<T>& core, loop_context& cx,
                            F on_item, size_t credit) {
  promise<size_t> done;
  auto result = done.get_future();
  auto count = std::make_shared<size_t>(0);
  auto handler = std::make_shared<F>(std::move(on_item));
  subscriber_hooks<T> hooks;
  hooks.wrap_batch = [handler, count,
                      done](caf::intrusive_ptr<batch_data<T>> b) {
    auto run = [handler, count, done, b{std::move(b)}]() mutable {
      b->opened = true; // from here on, the job accounts for every item
      auto& xs = b->slots;
      size_t i = 0;
      try {
        for (; i < xs.size(); ++i) {
          (*handler)(channel_slot<T>::get(xs[i]));
          ++*count;
        }
      } catch (...) {
        // The items first (this cannot fail), then the future.
        if (auto owner = b->core().lock())
          owner->consumer_failed(b->subscriber(), xs, i + 1);
        done.set_error(current_exception_error());
      }
    };
    return loop_job_message(std::move(run));
  };
  hooks.wrap_end = [done, count] {
    return loop_job_message([done, count]() mutable {
      done.set_value(*count);
    });
  };
  hooks.on_down = fail_when_loop_stops(done);
  core.subscribe(cx.self(), credit, std::move(hooks));
  return result;
}

/// `consume_paced` if `on_item` returns a future, else `consume_each`.
template <class T, class F>
future<size_t> consume_in_loop(channel_core<T>& core, loop_context& cx,
                               F on_item, size_t credit) {
  if constexpr (is_future<std::invoke_result_t<F&, T&>>::value)
    return consume_paced(core, cx, std::move(on_item), credit);
  else
    return consume_each(core, cx, std::move(on_item), credit);
}

} // namespace weave::internal
