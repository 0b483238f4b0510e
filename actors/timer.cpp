#include "actors/timer.hpp"

#include <algorithm>
#include <mutex>
#include <utility>

#include "caf/actor_system.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/send.hpp"
#include "caf/spawn_options.hpp"

#include "runtime/internal/component.hpp"
#include "runtime/internal/deadline_timer.hpp"
#include "runtime/internal/job.hpp"
#include "runtime/internal/loop_jobs.hpp"
#include "runtime/internal/runtime_access.hpp"

namespace weave::actors {

namespace internal_timer {

using weave::internal::steady_clock;
using state_type = timer_stats::state_type;

using tick_atom = caf::atom_constant<caf::atom("timertick")>;

class timer_state;

/// One arming of a timer in the runtime's deadline timer: at its deadline
/// the deadline timer "drops" it (the compare-and-swap out of `queued`),
/// which fires the timer; `cancel()` wins that same compare-and-swap with
/// `try_drop()` instead. Exactly one of them owns the entry's outcome.
class timer_entry final : public weave::internal::counted_job {
public:
  timer_entry(std::shared_ptr<timer_state> st, uint64_t tick)
    : state_(std::move(st)), tick_(tick) {
    // nop
  }

  bool run() noexcept override {
    return true; // never queued on an executor: only the timer drops it
  }

  bool drop(caf::error) noexcept override;

private:
  std::shared_ptr<timer_state> state_;
  uint64_t tick_;
};

/// A timer's shared state.
///
/// Lock: `mtx_` guards the state, the counters, the current entry and the
/// periodic timer's actor. No user code runs under it: the message (a user
/// value) is destroyed only with this state, entries are released after
/// unlocking, and sending under it only enqueues (it runs no handler).
class timer_state : public weave::internal::component,
                    public std::enable_shared_from_this<timer_state> {
public:
  timer_state(runtime& rt, caf::actor dest, steady_clock::duration d,
              caf::message msg, bool periodic)
    : timer_(weave::internal::runtime_access::timer(rt)),
      dest_(dest.address()),
      period_(d),
      msg_(std::move(msg)),
      periodic_(periodic),
      start_(steady_clock::now()) {
    // nop
  }

  weave::internal::shutdown_phase phase() const noexcept override {
    return weave::internal::shutdown_phase::loops;
  }

  void begin_shutdown(shutdown_report&) override {
    stop(state_type::shut_down);
  }

  void finish_shutdown(steady_clock::time_point, shutdown_report&) override {
    // nop: no thread of its own
  }

  void release_actors() noexcept override {
    caf::actor ticker;
    std::unique_lock<std::mutex> guard{mtx_};
    ticker.swap(ticker_);
  }

  /// Spawns the periodic timer's ticker (under the registry's lock).
  void start(caf::actor_system& sys);

  /// Arms tick `k` (the first, or the next after an answer).
  void arm(uint64_t k) {
    // Too long for any clock (like `loop_context::sleep`): never fires,
    // nothing to arm.
    if (period_ >= weave::internal::max_timer_delay)
      return;
    auto at = weave::internal::saturating_add(start_, times(k));
    if (at == steady_clock::time_point::max())
      return;
    auto entry = caf::make_counted<timer_entry>(shared_from_this(), k);
    entry->deadline = at;
    weave::internal::job_ptr old;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      if (state_ != state_type::armed)
        return;
      old = std::exchange(current_, entry);
    }
    timer_->arm(std::move(entry));
  }

  /// The entry of tick `k` is due (on the timer thread).
  void fire(uint64_t k) {
    if (!periodic_) {
      auto dest = caf::actor_cast<caf::actor>(dest_);
      {
        std::unique_lock<std::mutex> guard{mtx_};
        if (state_ != state_type::armed)
          return;
        if (!dest) {
          state_ = state_type::stopped;
          return;
        }
        state_ = state_type::fired;
        ++fired_;
        last_tick_ = k;
        // Sent under the lock: `stats()` never shows `fired` before it.
        caf::anon_send(dest, msg_);
      }
      return;
    }
    caf::actor ticker;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      if (state_ != state_type::armed)
        return;
      ticker = ticker_;
    }
    if (ticker)
      caf::anon_send(ticker, tick_atom::value, k);
  }

  /// The ticker sends tick `k` unless the timer stopped; false then.
  bool send_tick(caf::event_based_actor* self, uint64_t k) {
    auto dest = caf::actor_cast<caf::actor>(dest_);
    std::unique_lock<std::mutex> guard{mtx_};
    if (state_ != state_type::armed)
      return false;
    if (!dest) {
      state_ = state_type::stopped;
      return false;
    }
    ++fired_;
    skipped_ += k - last_tick_ - 1;
    last_tick_ = k;
    // Under the lock: after `cancel()` returned, no tick is sent.
    self->request(dest, caf::infinite, msg_)
      .then([self, st = shared_from_this(), k] { st->answered(self, k); },
            [self, st = shared_from_this(), k](caf::error& err) {
              st->answered(self, k, err);
            });
    return true;
  }

  /// `dest` answered tick `k`: arms the first tick due after now.
  void answered(caf::event_based_actor* self, uint64_t k,
                const caf::error& err = caf::error{}) {
    if (err == caf::sec::request_receiver_down) {
      stop(state_type::stopped);
      self->quit();
      return;
    }
    auto elapsed = steady_clock::now() - start_;
    uint64_t next = static_cast<uint64_t>(elapsed / period_) + 1;
    arm(std::max(next, k + 1));
  }

  /// Stops the timer with `why` unless it already stopped. True if this
  /// call prevented a delivery (a one-shot's) or later ticks (a periodic
  /// one's).
  bool stop(state_type why) {
    weave::internal::job_ptr entry; // both released after unlocking
    caf::actor ticker;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      if (state_ != state_type::armed)
        return false;
      if (!periodic_ && current_ != nullptr) {
        entry = current_; // its compare-and-swap decides, below
      } else {
        state_ = why;
        entry.swap(current_);
        ticker.swap(ticker_);
      }
    }
    if (!periodic_ && entry != nullptr) {
      // The deadline timer's firing and this call race for the entry's
      // one compare-and-swap out of `queued`: exactly one wins.
      if (!entry->try_drop())
        return false; // firing: it delivers (or finds the target gone)
      weave::internal::job_ptr mine;
      std::unique_lock<std::mutex> guard{mtx_};
      state_ = why;
      mine.swap(current_); // the entry holds this state: end the cycle
      guard.unlock();
      return true;
    }
    if (entry != nullptr)
      entry->try_drop(); // never fires; dropped from the heap later
    if (ticker)
      caf::anon_send_exit(ticker, caf::exit_reason::user_shutdown);
    return true;
  }

  timer_stats stats() {
    std::unique_lock<std::mutex> guard{mtx_};
    return timer_stats{state_, fired_, skipped_, last_tick_};
  }

private:
  steady_clock::duration times(uint64_t k) const {
    if (k != 0 && period_ > steady_clock::duration::max() / static_cast<
                                                         steady_clock::rep>(k))
      return steady_clock::duration::max();
    return period_ * static_cast<steady_clock::rep>(k);
  }

  std::shared_ptr<weave::internal::deadline_timer> timer_;
  caf::actor_addr dest_;
  const steady_clock::duration period_;
  const caf::message msg_;
  const bool periodic_;
  const steady_clock::time_point start_;
  std::mutex mtx_;
  state_type state_ = state_type::armed;
  weave::internal::job_ptr current_;
  // The periodic timer's ticker (a strong reference until it stops).
  caf::actor ticker_;
  uint64_t fired_ = 0;
  uint64_t skipped_ = 0;
  uint64_t last_tick_ = 0;
};

bool timer_entry::drop(caf::error) noexcept {
  auto st = std::move(state_); // the entry lets go of the state when done
  st->fire(tick_);
  return true;
}

void timer_state::start(caf::actor_system& sys) {
  if (!periodic_)
    return;
  auto dest = caf::actor_cast<caf::actor>(dest_);
  ticker_ = sys.spawn<caf::hidden>(
    [st = shared_from_this(), dest](caf::event_based_actor* self)
      -> caf::behavior {
      self->monitor(dest);
      self->set_down_handler([self, st](caf::down_msg&) {
        st->stop(state_type::stopped);
        self->quit();
      });
      return {
        [self, st](tick_atom, uint64_t k) {
          if (!st->send_tick(self, k))
            self->quit();
        },
      };
    });
}

} // namespace internal_timer

timer start_timer(runtime& rt, caf::actor dest,
                  internal::steady_clock::duration d, caf::message msg,
                  bool periodic) {
  if (!dest)
    raise(make_error(errc::invalid_argument,
                     periodic ? "send_every: invalid destination actor"
                              : "send_after: invalid destination actor"));
  auto st = std::make_shared<internal_timer::timer_state>(rt, std::move(dest),
                                                          d, std::move(msg),
                                                          periodic);
  internal::runtime_access::start_component(
    rt, st, [&](caf::actor_system& sys) { st->start(sys); });
  st->arm(1); // tick 1, due at start + d
  return timer{std::move(st)};
}

bool timer::cancel() {
  return state_ != nullptr
         && state_->stop(timer_stats::state_type::cancelled);
}

timer_stats timer::stats() const {
  if (state_ == nullptr)
    return timer_stats{timer_stats::state_type::stopped, 0, 0, 0};
  return state_->stats();
}

} // namespace weave::actors
