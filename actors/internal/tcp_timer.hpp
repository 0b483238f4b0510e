#pragma once

// Internal: the deadlines of a TCP actor (connect, read, idle) on the
// runtime's deadline timer. At its deadline an entry sends
// `(tcp_timeout_atom, tag)` to the actor, which it holds weakly: unlike
// CAF's `delayed_send`, whose clock holds its receiver until the message is
// due, a pending deadline never keeps a connection whose handles are all
// gone alive. A `tcp_timer` cancels its entry when reset or destroyed (the
// read was answered, the connect finished), so the timer forgets it at its
// next sweep instead of holding it until the deadline.
//
// Thread-safety: the entry's state is the job's lock-free state machine;
// the timer's thread sends the message, the actor cancels.

#include <cstdint>
#include <utility>

#include "caf/actor_cast.hpp"
#include "caf/send.hpp"
#include "caf/timespan.hpp"
#include "caf/weak_intrusive_ptr.hpp"

#include "actors/internal/tcp_reactor.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/deadline_timer.hpp"
#include "runtime/internal/job.hpp"

namespace weave::actors::internal {

/// A deadline's entry on the runtime's timer.
class tcp_timer_job final : public weave::internal::counted_job {
public:
  tcp_timer_job(caf::weak_actor_ptr who, uint64_t tag)
    : who_(std::move(who)), tag_(tag) {
    // nop
  }

  bool run() noexcept override {
    return true; // never queued on an executor: only the timer drops it
  }

  bool drop(caf::error) noexcept override {
    if (auto ptr = who_.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(ptr), tcp_timeout_atom::value,
                     tag_);
    return true;
  }

private:
  caf::weak_actor_ptr who_;
  uint64_t tag_;
};

/// A pending deadline; cancelled when reset or destroyed.
class tcp_timer {
public:
  tcp_timer() = default;

  tcp_timer(tcp_timer&& other) noexcept : entry_(std::move(other.entry_)) {
    // nop
  }

  tcp_timer& operator=(tcp_timer&& other) noexcept {
    if (this != &other) {
      reset();
      entry_ = std::move(other.entry_);
    }
    return *this;
  }

  ~tcp_timer() {
    reset();
  }

  /// Arms a deadline `d` from now for `who` with `tag`; "never"
  /// (`timespan::max()`, or a deadline past the clock's range) arms none.
  static tcp_timer start(weave::internal::deadline_timer& timer,
                         caf::weak_actor_ptr who, caf::timespan d,
                         uint64_t tag) {
    tcp_timer result;
    auto at = weave::internal::deadline_after(d);
    if (at == weave::internal::steady_clock::time_point::max())
      return result;
    auto entry = caf::make_counted<tcp_timer_job>(std::move(who), tag);
    entry->deadline = at;
    result.entry_ = entry;
    timer.arm(std::move(entry));
    return result;
  }

  /// Cancels the deadline (no message is sent unless it is being sent).
  void reset() noexcept {
    if (entry_) {
      entry_->try_drop();
      entry_.reset();
    }
  }

private:
  weave::internal::job_ptr entry_;
};

} // namespace weave::actors::internal
