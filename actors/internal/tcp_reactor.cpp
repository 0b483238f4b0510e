#include "actors/internal/tcp_reactor.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <optional>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include "caf/actor_cast.hpp"
#include "caf/actor_system.hpp"
#include "caf/make_message.hpp"
#include "caf/scheduled_actor.hpp"
#include "caf/send.hpp"

#include "actors/internal/io_unit.hpp"

#include "runtime/error.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/internal/thread_activity.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/this_thread.hpp"

namespace weave::actors::internal {

namespace {

/// Readiness events taken from the kernel per `epoll_wait`.
constexpr int event_batch = 64;

/// The epoll key of the wake-up eventfd (no socket gets id 0).
constexpr uint64_t wake_key = 0;

/// How often the standby looks whether the I/O thread's turn ended.
constexpr auto standby_look = std::chrono::milliseconds{10};

[[noreturn]] void fail(const char* call) {
  auto code = errno;
  raise(make_error(errc::io_error, std::string{"tcp reactor: "} + call + ": "
                                     + std::strerror(code)));
}

io_unit::gather_mode gather_of(const runtime_config& cfg) {
  auto mode = cfg.tcp_gather();
  if (mode == "always")
    return io_unit::gather_mode::always;
  if (mode == "never")
    return io_unit::gather_mode::never;
  return io_unit::gather_mode::automatic;
}

std::mutex registry_mtx;
/// The reactor of each live runtime (by address; a stopping one is
/// replaced when a new runtime reuses the address).
std::vector<std::pair<runtime*, std::weak_ptr<tcp_reactor>>> registry;

} // namespace

tcp_reactor::tcp_reactor() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0)
    fail("epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    ::close(epoll_fd_);
    fail("eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = wake_key;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    ::close(wake_fd_);
    ::close(epoll_fd_);
    fail("epoll_ctl");
  }
}

tcp_reactor::~tcp_reactor() {
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

std::shared_ptr<tcp_reactor> tcp_reactor::of(runtime& rt) {
  std::unique_lock<std::mutex> guard{registry_mtx};
  for (auto i = registry.begin(); i != registry.end();) {
    auto ptr = i->second.lock();
    if (!ptr) {
      i = registry.erase(i);
      continue;
    }
    if (i->first == &rt) {
      std::unique_lock<std::mutex> g2{ptr->mtx_};
      if (!ptr->stopping_)
        return ptr;
      g2.unlock();
      i = registry.erase(i);
      continue;
    }
    ++i;
  }
  auto ptr = std::make_shared<tcp_reactor>();
  ptr->timer_ = weave::internal::runtime_access::timer(rt);
  auto detector = weave::internal::runtime_access::detector(rt);
  // Without the blocking detector (CAF's own scheduler policies) nothing
  // watches the I/O thread's turns, so nothing would rescue its sockets from
  // a handler that blocks there: no turns run there then.
  auto turns = detector != nullptr ? rt.config().tcp_inline_turns() : 0;
  ptr->spin_ = turns > 0 ? rt.config().spin() : caf::timespan::zero();
  ptr->owner_ = static_cast<const caf::actor_system_config*>(&rt.config());
  ptr->detector_ = turns > 0 ? detector : nullptr;
  weave::internal::runtime_access::start_component(
    rt, ptr, [&](caf::actor_system& sys) {
      ptr->sys_ = &sys;
      ptr->unit_ = std::make_shared<io_unit>(sys, turns, detector,
                                             gather_of(rt.config()));
      weave::internal::runtime_access::keep_with_system(rt, ptr->unit_);
      ptr->start_thread();
      if (ptr->detector_ != nullptr)
        ptr->detector_->set_io_rescue(
          [weak = std::weak_ptr<tcp_reactor>{ptr}](uint64_t stuck) {
            if (auto r = weak.lock())
              r->rescue(stuck);
          });
    });
  // Up before its first user: the thread's start reads a few files (the
  // machine's load, its cgroup), and a descriptor it holds a moment then
  // closes would be a hole a program counting its descriptors (an EMFILE
  // test) does not expect later.
  {
    std::unique_lock<std::mutex> up{ptr->mtx_};
    ptr->cv_.wait(up, [&] { return ptr->bound_ || ptr->ended_; });
  }
  registry.emplace_back(&rt, ptr);
  return ptr;
}

bool tcp_reactor::gathering() const noexcept {
  return unit_ != nullptr && unit_->gathering();
}

void tcp_reactor::start_thread() {
  weave::internal::census_thread_started();
  // Counted by the actor system as long as it may run actors' turns (the
  // system's shutdown waits for it; see run()).
  sys_->inc_detached_threads();
  try {
    std::thread{[self = shared_from_this()] {
      self->run();
      weave::internal::census_thread_ended();
    }}.detach();
  } catch (...) {
    sys_->dec_detached_threads();
    weave::internal::census_thread_ended();
    fail("std::thread");
  }
  std::unique_lock<std::mutex> guard{mtx_};
  started_ = true;
}

uint64_t tcp_reactor::add(int fd, const caf::actor& who, direct_turn direct) {
  uint64_t id;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (stopping_)
      raise(make_error(errc::shut_down, "tcp: the runtime is shutting down"));
    id = next_id_++;
    actors_.emplace(id, listed_actor{caf::actor_cast<caf::weak_actor_ptr>(who),
                                     direct});
  }
  // Disarmed until `arm`; one-shot already, because the kernel reports
  // EPOLLERR and EPOLLHUP even for an empty mask (level-triggered, they
  // would repeat until the socket is removed).
  epoll_event ev{};
  ev.events = EPOLLONESHOT;
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    auto code = errno;
    std::unique_lock<std::mutex> guard{mtx_};
    actors_.erase(id);
    errno = code;
    fail("epoll_ctl");
  }
  return id;
}

void tcp_reactor::arm(uint64_t id, int fd, bool read, bool write) {
  epoll_event ev{};
  ev.events = EPOLLONESHOT | (read ? EPOLLIN | EPOLLRDHUP : 0u)
              | (write ? EPOLLOUT : 0u);
  ev.data.u64 = id;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
}

bool tcp_reactor::yield_ready(uint64_t id, uint32_t events) {
  // Spreading, a pass's last readiness runs here and the rest go to the
  // workers: one kept (always last) would take that place every pass.
  if (io_unit::current() != unit_.get() || !unit_->gathering())
    return false;
  std::unique_lock<std::mutex> guard{mtx_};
  if (stopping_)
    return false;
  again_.emplace_back(id, events | again_event);
  again_pending_.store(true, std::memory_order_relaxed);
  guard.unlock();
  unit_->count_kept_readiness();
  return true;
}

void tcp_reactor::unwatch(int fd) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void tcp_reactor::forget(uint64_t id) {
  caf::weak_actor_ptr gone;
  std::unique_lock<std::mutex> guard{mtx_};
  auto i = actors_.find(id);
  if (i != actors_.end()) {
    gone = std::move(i->second.who);
    actors_.erase(i);
  }
  guard.unlock();
  cv_.notify_all(); // the shutdown waits for every listed actor's end
}

namespace {

/// Blocks every signal on the calling thread (they belong to the
/// application's threads) and names it.
void become_io_thread(const char* name) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  try {
    set_this_thread_name(name);
  } catch (...) {
    // unnamed
  }
}

/// Shows what the thread does in dumps (the I/O slot's idle state).
void publish(weave::internal::blocking_detector::slot* slot,
             weave::internal::blocking_detector::idle_state st) {
  if (slot != nullptr)
    slot->idle.store(st, std::memory_order_release);
}

} // namespace

int tcp_reactor::wait_events(epoll_event* evs, int timeout_ms) {
  auto n = ::epoll_wait(epoll_fd_, evs, event_batch, timeout_ms);
  if (n < 0 && errno == EINTR)
    return 0;
  return n;
}

bool tcp_reactor::take_ready(const epoll_event* evs, int n) {
  auto& ready = pending_;
  bool stop = false;
  std::unique_lock<std::mutex> guard{mtx_};
  for (int i = 0; i < n; ++i) {
    if (evs[i].data.u64 == wake_key) {
      stop = stopping_;
      continue;
    }
    auto j = actors_.find(evs[i].data.u64);
    if (j != actors_.end())
      if (auto ptr = j->second.who.lock())
        ready.push_back(
          ready_item{std::move(ptr), uint32_t{evs[i].events}, j->second.direct});
  }
  // After the kernel's: these turns just ran.
  for (auto [id, events] : again_) {
    auto j = actors_.find(id);
    if (j != actors_.end())
      if (auto ptr = j->second.who.lock())
        ready.push_back(ready_item{std::move(ptr), events, j->second.direct});
  }
  again_.clear();
  again_pending_.store(false, std::memory_order_relaxed);
  return stop;
}

bool tcp_reactor::next_ready(ready_item& out, bool& last) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (next_ >= pending_.size()) {
    pending_.clear(); // moved from: no reference dropped here
    next_ = 0;
    return false;
  }
  out = std::move(pending_[next_++]);
  last = next_ == pending_.size();
  return true;
}

void tcp_reactor::run() {
  using idle = weave::internal::blocking_detector::idle_state;
  become_io_thread("weave-tcp");
  // Listed in the runtime's thread dumps, with the I/O slot: a dump shows
  // the actor whose turn runs here. Unlisted before the actor system may
  // go (the record points into the detector, which goes with it).
  std::optional<weave::internal::service_thread_scope> listed;
  listed.emplace(owner_, "weave-tcp");
  auto slot = detector_ != nullptr ? detector_->io_slot() : nullptr;
  if (slot != nullptr)
    if (auto rec = weave::internal::this_thread_activity())
      rec->bind_slot(slot, detector_->workers());
  auto& unit = *unit_;
  unit.bind();
  {
    std::unique_lock<std::mutex> guard{mtx_};
    bound_ = true;
  }
  cv_.notify_all();
  epoll_event evs[event_batch];
  bool ran = false;
  for (;;) {
    // After running turns, the next readiness is often microseconds away
    // (a stream's reader that caught up with its writer): look for it for
    // `weave.spin`, as an idle scheduler worker does, before sleeping (a
    // sleeping thread's wake-up costs more than the spin on idle cores).
    // Jobs kept here (gathering, io_unit.hpp): one look, no sleep.
    int n = 0;
    bool kept = ran
                && (unit.has_kept()
                    || again_pending_.load(std::memory_order_relaxed));
    if (kept) {
      n = wait_events(evs, 0);
    } else if (ran && spin_ > caf::timespan::zero()) {
      publish(slot, idle::polling);
      auto until = std::chrono::steady_clock::now() + spin_;
      do {
        n = wait_events(evs, 0);
      } while (n == 0 && std::chrono::steady_clock::now() < until);
    }
    if (n == 0 && !kept) {
      publish(slot, idle::sleeping);
      n = wait_events(evs, -1);
    }
    publish(slot, idle::running);
    if (n < 0)
      break;
    bool stop = take_ready(evs, n);
    auto direct = deliver_ready();
    ran = unit.run_chain(direct) + direct > 0;
    if (ran)
      unit.sample();
    if (stop)
      break;
  }
  unit.unbind();
  listed.reset();
  // No more turns here: the actor system may go (it waited for this).
  sys_->dec_detached_threads();
  {
    std::unique_lock<std::mutex> guard{mtx_};
    ended_ = true;
  }
  cv_.notify_all();
}

size_t tcp_reactor::deliver_ready() {
  auto& unit = *unit_;
  bool gathering = unit.gathering();
  size_t direct = 0;
  ready_item item;
  bool last = false;
  while (next_ready(item, last)) {
    bool here = item.direct != nullptr
                && (gathering ? direct < unit.turns() : last);
    if (here
        && unit.run_direct(static_cast<caf::scheduled_actor*>(item.who->get()),
                           item.direct, item.events))
      ++direct;
    else
      unit.deliver(item.who,
                   caf::make_message(tcp_ready_atom::value, item.events));
    item = ready_item{}; // outside the lock: may drop the last reference
  }
  return direct;
}

void tcp_reactor::rescue(uint64_t stuck) {
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (stopping_ || ended_ || standby_ || detector_ == nullptr)
      return;
    standby_ = true;
    // It sends messages: counted like the I/O thread (the shutdown leaves
    // the actor system alive while it may still send); counted under the
    // lock, so a shutdown that began after the check above has not taken
    // its count of detached threads yet without this one.
    sys_->inc_detached_threads();
  }
  weave::internal::census_thread_started();
  try {
    std::thread{[self = shared_from_this(), stuck] {
      self->run_standby(stuck);
      weave::internal::census_thread_ended();
    }}.detach();
  } catch (...) {
    weave::internal::census_thread_ended();
    sys_->dec_detached_threads();
    std::unique_lock<std::mutex> guard{mtx_};
    standby_ = false;
  }
}

void tcp_reactor::run_standby(uint64_t stuck) {
  become_io_thread("weave-tcp-standby");
  {
    weave::internal::service_thread_scope listed{owner_, "weave-tcp-standby"};
    auto& epoch = detector_->io_slot()->epoch;
    epoll_event evs[event_batch];
    // Until the I/O thread is out of the turn it was stuck in (looked at
    // every standby_look), or the shutdown: every readiness goes to the
    // scheduler as a message, as with `weave.tcp-inline-turns = 0`.
    while (epoch.load(std::memory_order_acquire) == stuck) {
      auto n = wait_events(evs, static_cast<int>(standby_look.count()));
      if (n < 0)
        break;
      // With what the stuck pass had left.
      bool stop = take_ready(evs, n);
      ready_item item;
      bool last = false;
      while (next_ready(item, last)) {
        caf::anon_send(caf::actor_cast<caf::actor>(item.who),
                       tcp_ready_atom::value, item.events);
        item = ready_item{};
      }
      // An actor the stuck handler made runnable waits in the unit, where
      // only the stuck thread would run it: to a worker (as a worker's
      // queue is stolen from while it is stuck).
      unit_->release_kept();
      if (stop)
        break;
    }
  }
  sys_->dec_detached_threads();
  {
    std::unique_lock<std::mutex> guard{mtx_};
    standby_ = false;
  }
  cv_.notify_all();
}

void tcp_reactor::stop_thread() noexcept {
  uint64_t one = 1;
  auto n = ::write(wake_fd_, &one, sizeof(one));
  (void) n;
}

void tcp_reactor::begin_shutdown(shutdown_report&) {
  std::vector<caf::weak_actor_ptr> actors;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (stopping_)
      return;
    stopping_ = true;
    for (auto& [id, listed] : actors_)
      actors.emplace_back(listed.who);
  }
  for (auto& who : actors)
    if (auto ptr = who.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(ptr), tcp_stop_atom::value);
  actors.clear();
  stop_thread();
}

void tcp_reactor::finish_shutdown(
  weave::internal::steady_clock::time_point deadline,
  shutdown_report& report) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (!started_ || counted_)
    return;
  // A thread that ends just past the deadline (woken a moment ago, or a
  // turn that was about to end) is still waited for by the shutdown's
  // patience for detached threads (shutdown_job.cpp), which counts it.
  bool ended = cv_.wait_until(guard, deadline, [this] { return ended_; });
  cv_.wait_until(guard, deadline, [this] { return !standby_; });
  // Every listed actor was told to stop: each ends (its state closes its
  // socket and answers what it owes) before the actor system goes.
  cv_.wait_until(guard, deadline, [this] { return actors_.empty(); });
  counted_ = true;
  ++(ended ? report.threads_joined : report.threads_abandoned);
}

} // namespace weave::actors::internal
