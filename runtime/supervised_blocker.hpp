#pragma once

/// `spawn_supervised_blocker`: a blocker restarted on failure under a policy,
/// Erlang/OTP style.
///
///     auto s = spawn_supervised_blocker(rt, [] { return poll_device(); },
///                                       restart_policy{}, "poller", watcher);
///     s.result().get();   // the first successful run's value, or gave_up
///
/// A supervisor actor runs `fn` on a blocker (its own detached thread). When
/// a run fails (it throws), the supervisor starts it again, unless that would
/// be more than `max_restarts` restarts within `within` (OTP's defaults: 1 in
/// 5 s); then it gives up. The future completes with the first successful
/// run's value, or with `gave_up` whose message carries the last failure.
/// Each restart and the give-up are sent to `observer` (if given) as
/// `blocker_restarted` / `blocker_gave_up` messages; the supervisor actor
/// itself can be monitored, and ends with the final outcome. Runtime shutdown
/// stops restarts (the future fails with `shut_down`).
///
/// `fn` must be copyable: each run gets a fresh copy.
///
/// Thread-safety: may be called from any thread.

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "caf/actor.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/meta/type_name.hpp"

#include "runtime/future.hpp"
#include "runtime/runtime.hpp"
#include "runtime/spawn_blocker.hpp"

namespace weave {

/// When to stop restarting: more than `max_restarts` within `within`.
struct restart_policy {
  size_t max_restarts = 1;
  caf::timespan within = std::chrono::seconds{5};
};

/// Sent to the observer before each restart.
struct blocker_restarted {
  std::string name;
  /// 1 for the first restart.
  uint64_t restart = 0;
  std::string reason;
};

/// Sent to the observer when the supervisor gives up.
struct blocker_gave_up {
  std::string name;
  uint64_t restarts = 0;
  std::string reason;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, blocker_restarted& x) {
  return f(caf::meta::type_name("blocker_restarted"), x.name, x.restart,
           x.reason);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, blocker_gave_up& x) {
  return f(caf::meta::type_name("blocker_gave_up"), x.name, x.restarts,
           x.reason);
}

/// What `spawn_supervised_blocker` returns.
template <class T>
class supervised_blocker {
public:
  supervised_blocker(caf::actor supervisor, future<T> result)
    : supervisor_(std::move(supervisor)), result_(std::move(result)) {
  }

  /// The supervisor actor, to monitor.
  const caf::actor& supervisor() const noexcept {
    return supervisor_;
  }

  future<T>& result() noexcept {
    return result_;
  }

private:
  caf::actor supervisor_;
  future<T> result_;
};

template <class F>
auto spawn_supervised_blocker(runtime& rt, F fn, restart_policy policy = {},
                              std::string name = "supervised",
                              caf::actor observer = {})
  -> supervised_blocker<std::invoke_result_t<F&>> {
  using t = std::invoke_result_t<F&>;
  promise<t> done;
  auto result = done.get_future();
  caf::actor_system* sys = nullptr;
  try {
    sys = &rt.system(); // throws `shut_down` once shutdown has begun
  } catch (const exception& e) {
    done.set_error(e.error());
    return {caf::actor{}, std::move(result)};
  }
  auto sup = sys->spawn([=](caf::event_based_actor* self) mutable {
    struct state_t {
      std::deque<internal::steady_clock::time_point> restarts;
      uint64_t total = 0;
    };
    auto st = std::make_shared<state_t>();
    auto run = std::make_shared<std::function<void()>>();
    *run = [=]() mutable {
      auto on_value = [=](auto&&... xs) mutable {
        done.set_value(std::forward<decltype(xs)>(xs)...);
        self->quit();
      };
      auto on_error = [=](caf::error& err) mutable {
        auto why = render(err);
        if (is(err, errc::shut_down)) {
          done.set_error(err);
          self->quit(err);
          return;
        }
        auto now = internal::steady_clock::now();
        while (!st->restarts.empty()
               && now - st->restarts.front() > policy.within)
          st->restarts.pop_front();
        if (st->restarts.size() >= policy.max_restarts) {
          auto gave_up = make_error(errc::gave_up,
                                    "blocker '" + name + "' gave up after "
                                      + std::to_string(st->total)
                                      + " restart(s); last failure: " + why);
          if (observer)
            self->send(observer, blocker_gave_up{name, st->total, why});
          done.set_error(gave_up);
          self->quit(gave_up);
          return;
        }
        st->restarts.push_back(now);
        ++st->total;
        if (observer)
          self->send(observer, blocker_restarted{name, st->total, why});
        (*run)();
      };
      spawn_blocker(self, fn, name).then(std::move(on_value),
                                          std::move(on_error));
    };
    (*run)();
    // Break the self-reference when the supervisor ends.
    self->attach_functor([run] { *run = nullptr; });
  });
  return {std::move(sup), std::move(result)};
}

} // namespace weave
