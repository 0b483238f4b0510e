#pragma once

// Internal: the resolver's lookup threads and their queue (see
// actors/resolver.hpp for what the resolver promises). Shared by the
// resolver's actor (actors/resolver.cpp), its threads and the runtime's
// shutdown. Users never include this header.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"
#include "caf/atom.hpp"
#include "caf/blocking_actor.hpp"
#include "caf/expected.hpp"
#include "caf/send.hpp"
#include "caf/spawn_options.hpp"

#include "actors/resolver.hpp"
#include "runtime/error.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/spawn_guard.hpp"
#include "runtime/this_thread.hpp"

namespace weave::actors::internal_resolver {

namespace internal = weave::internal;

/// A lookup's answer, from a thread to the actor.
using resolved_atom = caf::atom_constant<caf::atom("resolved")>;

/// The shutdown began: the actor answers what it owes and ends.
using close_atom = caf::atom_constant<caf::atom("resclose")>;

using addresses = std::vector<resolved_address>;

/// How long the shutdown lets a running lookup return before it gives up
/// its thread (a lookup answers in well under this unless it is stuck).
constexpr auto running_lookup_grace = std::chrono::milliseconds{100};

/// One request, as the threads see it.
struct lookup {
  uint64_t id;
  std::string host;
  uint16_t port;
};

/// Calls the lookup function (on a lookup thread) and converts its answer.
caf::expected<addresses> run_lookup(const resolver_options& opts,
                                    const lookup& l);

/// The threads and their queue, shared by the actor, the threads and the
/// runtime's shutdown. Ops: `submit` and `expire` (the actor), `close`
/// (the actor's end), `stats`; the component hooks (the shutdown).
/// Thread-safety: any thread. Shutdown: see `begin_shutdown` and
/// `finish_shutdown`.
///
/// Lock: `mtx_` guards the queue, the counters and the actor's address. No
/// user code runs under it (the invariant of every weave lock): the lookup
/// function runs without it, and
/// messages to the actor are sent after unlocking (counted in `sending_`,
/// so that `release_actors` can wait for sends in flight before the actor
/// system may go).
class resolver_state : public internal::component,
                       public std::enable_shared_from_this<resolver_state> {
public:
  explicit resolver_state(resolver_options opts) : opts_(std::move(opts)) {
    // nop
  }

  internal::shutdown_phase phase() const noexcept override {
    return internal::shutdown_phase::pools;
  }

  void begin_shutdown(shutdown_report&) override {
    caf::actor actor;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      close_locked();
      actor = actor_;
    }
    cv_.notify_all();
    // The actor answers its pending requests with `shut_down` and ends.
    if (actor)
      caf::anon_send(actor, close_atom::value);
  }

  void finish_shutdown(internal::steady_clock::time_point deadline,
                       shutdown_report& report) override {
    std::unique_lock<std::mutex> guard{mtx_};
    if (counted_)
      return;
    // Stuck threads are not waited for: they were given up already. Lookups
    // still running (their requests answered `shut_down` by now) get a short
    // grace to return; then their threads are given up like those of a
    // lookup past its deadline, so that the shutdown never waits for a
    // lookup that does not return.
    auto grace_end = std::min(
      deadline, internal::saturating_add(internal::steady_clock::now(),
                                         running_lookup_grace));
    ended_cv_.wait_until(guard, grace_end, [this] { return threads_ == 0; });
    give_up_running_locked();
    ended_cv_.wait_until(guard, deadline, [this] { return threads_ == 0; });
    counted_ = true;
    report.threads_joined += joined_;
    report.threads_abandoned += threads_ + stuck_;
  }

  size_t given_up_threads() const noexcept override {
    std::unique_lock<std::mutex> guard{mtx_};
    return stuck_;
  }

  void release_actors() noexcept override {
    std::unique_lock<std::mutex> guard{mtx_};
    actor_ = nullptr;
    ended_cv_.wait(guard, [this] { return sending_ == 0; });
  }

  void set_actor(caf::actor_system& sys, caf::actor actor) {
    std::unique_lock<std::mutex> guard{mtx_};
    sys_ = &sys;
    actor_ = std::move(actor);
  }

  /// Queues `l`, starting a thread if none is free. False once closed.
  bool submit(lookup l) {
    std::unique_lock<std::mutex> guard{mtx_};
    if (closed_)
      return false;
    queue_.emplace_back(std::move(l));
    if (idle_ > queue_.size() - 1) {
      guard.unlock();
      cv_.notify_one();
      return true;
    }
    if (threads_ < opts_.threads && threads_ + stuck_ < cap()) {
      ++threads_; // reserved: the shutdown waits for it from here on
      guard.unlock();
      start_thread(); // throws io_error if no thread can start
    }
    return true;
  }

  /// The lookup `id` missed its deadline: drops it from the queue, or gives
  /// up its thread. Returns what the timeout error says.
  std::string expire(uint64_t id) {
    std::unique_lock<std::mutex> guard{mtx_};
    auto q = std::find_if(queue_.begin(), queue_.end(),
                          [id](const lookup& l) { return l.id == id; });
    if (q != queue_.end()) {
      queue_.erase(q);
      return stuck_ == 0 ? "still waiting for a free resolver thread"
                         : "still waiting for a free resolver thread ("
                             + std::to_string(stuck_)
                             + " lookups stuck in getaddrinfo)";
    }
    auto r = running_.find(id);
    if (r == running_.end() || r->second->stuck)
      return "no answer";
    r->second->stuck = true;
    --threads_;
    ++stuck_;
    ++abandoned_;
    // A replacement serves the queue, up to the cap.
    if (!closed_ && !queue_.empty() && idle_ < queue_.size()
        && threads_ + stuck_ < cap()) {
      ++threads_; // reserved
      guard.unlock();
      try {
        start_thread();
      } catch (...) {
        // The queued requests time out at their deadlines.
      }
    }
    return "getaddrinfo did not return (its thread is abandoned)";
  }

  /// The actor ended (its attached functor): no more requests; threads end
  /// when idle.
  void close() {
    caf::actor actor; // released after unlocking
    {
      std::unique_lock<std::mutex> guard{mtx_};
      close_locked();
      actor.swap(actor_);
    }
    cv_.notify_all();
  }

  resolver_stats stats() {
    std::unique_lock<std::mutex> guard{mtx_};
    resolver_stats s;
    s.threads = threads_;
    s.stuck = stuck_;
    s.abandoned = abandoned_;
    s.queued = queue_.size();
    return s;
  }

private:
  /// A thread's record while it runs a lookup.
  struct slot {
    bool stuck = false;
  };

  size_t cap() const noexcept {
    return opts_.threads + opts_.max_stuck;
  }

  void close_locked() {
    closed_ = true;
    queue_.clear(); // the actor answers them with `shut_down`
  }

  /// Gives up the threads of lookups still running (at the shutdown, after
  /// their grace): counted as stuck, never waited for.
  void give_up_running_locked() {
    for (auto& [id, s] : running_) {
      if (!s->stuck) {
        s->stuck = true;
        ++stuck_;
        ++abandoned_;
        --threads_;
      }
    }
  }

  /// Starts a thread whose slot the caller reserved (`++threads_` under
  /// the lock, so that a shutdown beginning now waits for it): a hidden
  /// detached actor, so that CAF names and counts it like every weave
  /// thread, and a runtime whose shutdown leaves it stuck keeps the actor
  /// system alive for it. Spawned without the lock; called only by the
  /// resolver's actor (a thread start is the one system call its handlers
  /// make; it does not wait for the thread), which the actor system
  /// outlives.
  void start_thread() {
    try {
      internal::spawn_guard sg;
      sys_->spawn<caf::detached + caf::hidden>(
        [self = shared_from_this()](caf::blocking_actor*) { self->run(); });
    } catch (const std::exception& e) {
      {
        std::unique_lock<std::mutex> guard{mtx_};
        --threads_;
      }
      ended_cv_.notify_all();
      raise(make_error(errc::io_error,
                       std::string{"resolver: spawn a thread: "} + e.what()));
    }
  }

  /// A thread: runs lookups until closed, or until it was abandoned and
  /// enough others serve.
  void run() {
    try {
      set_this_thread_name("weave-resolve");
    } catch (...) {
      // unnamed
    }
    std::unique_lock<std::mutex> guard{mtx_};
    for (;;) {
      ++idle_;
      cv_.wait(guard, [this] { return closed_ || !queue_.empty(); });
      --idle_;
      if (closed_)
        break;
      auto l = std::move(queue_.front());
      queue_.pop_front();
      slot me;
      running_.emplace(l.id, &me);
      guard.unlock();
      auto result = run_lookup(opts_, l);
      guard.lock();
      running_.erase(l.id);
      if (me.stuck) {
        // Its request was answered with `timeout`: the result is dropped.
        --stuck_;
        if (closed_ || threads_ >= opts_.threads) {
          if (closed_)
            ++joined_; // ended during the shutdown after all
          ended_cv_.notify_all();
          return;
        }
        ++threads_; // serves again
      } else {
        auto actor = actor_;
        if (actor) {
          ++sending_;
          guard.unlock();
          if (result)
            caf::anon_send(actor, resolved_atom::value, l.id,
                           std::move(*result));
          else
            caf::anon_send(actor, resolved_atom::value, l.id,
                           std::move(result.error()));
          actor = nullptr;
          guard.lock();
          if (--sending_ == 0)
            ended_cv_.notify_all();
        }
      }
    }
    --threads_;
    ++joined_;
    ended_cv_.notify_all();
  }

  const resolver_options opts_;
  caf::actor_system* sys_ = nullptr;
  mutable std::mutex mtx_;
  std::condition_variable cv_;       // work queued or closed
  std::condition_variable ended_cv_; // a thread ended, or a send finished
  std::deque<lookup> queue_;
  std::unordered_map<uint64_t, slot*> running_;
  // A strong reference: the actor lives until the runtime's shutdown (or
  // its exit), whether or not its spawner keeps a handle. It holds this
  // state too; the cycle ends in `release_actors` or `close`.
  caf::actor actor_;
  size_t threads_ = 0; // serving threads (idle or busy), not stuck ones
  size_t idle_ = 0;
  size_t stuck_ = 0;
  size_t abandoned_ = 0;
  size_t sending_ = 0;
  size_t joined_ = 0; // threads that ended once closed
  bool closed_ = false;
  bool counted_ = false;
};

} // namespace weave::actors::internal_resolver
