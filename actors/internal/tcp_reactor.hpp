#pragma once

// Internal: the I/O thread behind weave's TCP actors. One per runtime, named
// `weave-tcp`: it waits (epoll) for readiness of every registered socket
// and tells the socket's actor with `(tcp_ready_atom, events)`; the actor
// does the non-blocking call itself. A connection's actor that is idle when
// its readiness would run its turn on this thread gets that turn at once,
// without the message (`deliver_ready`, io_unit.hpp: `run_direct`).
// Registration is one-shot (`EPOLLONESHOT`): `arm` asks for one notification, so an actor gets at
// most one readiness message in flight per arming. A turn on this thread
// that stopped at its share with its socket still ready (a stream's 64 KiB)
// asks for its readiness again with `yield_ready` instead: kept for the
// next pass, no `epoll_ctl` (docs/design.md, "Readiness kept instead of
// re-armed"). A pass's readiness waits in `pending_`, delivered one at a
// time, so a turn that holds the thread leaves the rest to the standby.
//
// Where the woken actors run: the reactor delivers each readiness through
// its `io_unit`, so the socket's actor, and the actors its turn answers,
// may run their turns on this thread (io_unit.hpp; `weave.tcp-inline-turns`
// turns per readiness, default 8; 0: every readiness goes to the scheduler;
// `weave.tcp-gather`: more than one kept here while the cores are
// contended, and then the thread looks at its sockets between passes
// without sleeping).
// The thread counts as one of the actor system's detached threads while it
// runs: the system is not destroyed under a turn it runs.
//
// Actors are held weakly: a connection whose handles are all gone ends, and
// its state closes the socket. An actor stays listed from `add` until it
// ends (`forget`), also once its socket is closed (`unwatch`): at shutdown
// (first phase) every listed actor gets `(tcp_stop_atom)` (it answers its
// requests with `shut_down`, closes its socket if open and quits), so a
// connection that failed earlier ends too and never outlives the actor
// system. The thread stops; `finish_shutdown` waits for it until the
// deadline and counts it joined or abandoned.
//
// Locking: `mtx_` guards the registration table and the flags; no user code
// runs under it: readiness is delivered, and the turns it wakes run (user
// code: io_unit.hpp), after unlocking.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "caf/actor.hpp"
#include "caf/atom.hpp"
#include "caf/timespan.hpp"
#include "caf/weak_intrusive_ptr.hpp"

#include "actors/internal/io_unit.hpp"
#include "runtime/internal/blocking_detector.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/internal/deadline_timer.hpp"
#include "runtime/runtime.hpp"

struct epoll_event;

namespace weave::actors::internal {

using tcp_ready_atom = caf::atom_constant<caf::atom("tcp_ready")>;
using tcp_stop_atom = caf::atom_constant<caf::atom("tcp_stop")>;
using tcp_timeout_atom = caf::atom_constant<caf::atom("tcp_timer")>;
/// A connection's next turn for its protocol (tcp_protocol.hpp).
using tcp_more_atom = caf::atom_constant<caf::atom("tcp_more")>;


class tcp_reactor : public weave::internal::component,
                    public std::enable_shared_from_this<tcp_reactor> {
public:
  /// The runtime's reactor, started on first use. Throws `shut_down` once
  /// the runtime's shutdown has begun, `io_error` if epoll or the thread
  /// cannot be made.
  static std::shared_ptr<tcp_reactor> of(runtime& rt);

  tcp_reactor();
  ~tcp_reactor() override;

  /// The turn a readiness starts in a socket's actor, run without a
  /// message when the actor is idle (io_unit.hpp, `run_direct`).
  using direct_turn = io_unit::direct_turn;

  /// Lists `who` and watches `fd` (not armed); an id for `arm` and
  /// `forget`. Throws `shut_down` once stopping (the caller closes `fd`;
  /// `who` is not listed, so it must end by itself). With `direct`, a
  /// readiness that would run `who`'s turn on the I/O thread runs
  /// `direct(who, events)` there when `who` is idle, instead of sending it
  /// `(tcp_ready_atom, events)`; `direct` must do what that message's
  /// handler does.
  uint64_t add(int fd, const caf::actor& who, direct_turn direct = nullptr);

  /// One readiness notification for `fd` on read and/or write.
  void arm(uint64_t id, int fd, bool read, bool write);

  /// Set in the events of a readiness that `yield_ready` kept, not the
  /// kernel: the socket's registration is as it was armed.
  static constexpr uint32_t again_event = 1u << 24;

  /// On this reactor's I/O thread while it gathers only (false otherwise,
  /// and the caller arms instead): a turn that stopped at its share with `events` (EPOLLIN
  /// and/or EPOLLOUT) still ready asks for its readiness again after the
  /// other ready sockets, as the kernel's level readiness would have said
  /// at once, without re-arming the registration (`epoll_ctl`). It comes as
  /// a readiness with `again_event` set, in this thread's next pass (or, if
  /// a turn holds this thread, from the standby: `rescue`).
  bool yield_ready(uint64_t id, uint32_t events);

  /// Stops watching `fd` (before the caller closes it); its actor stays
  /// listed.
  void unwatch(int fd);

  /// Unlists the actor `id` (it ends).
  void forget(uint64_t id);

  /// The runtime's deadline timer (for the actors' deadlines).
  weave::internal::deadline_timer& timer() noexcept {
    return *timer_;
  }

  /// Any thread: whether the I/O thread gathers now (io_unit.hpp).
  bool gathering() const noexcept;

  weave::internal::shutdown_phase phase() const noexcept override {
    return weave::internal::shutdown_phase::loops;
  }
  void begin_shutdown(shutdown_report& report) override;
  void finish_shutdown(weave::internal::steady_clock::time_point deadline,
                       shutdown_report& report) override;

private:
  struct listed_actor {
    caf::weak_actor_ptr who;
    direct_turn direct = nullptr;
  };

  struct ready_item {
    caf::strong_actor_ptr who;
    uint32_t events = 0;
    direct_turn direct = nullptr;
  };

  void start_thread();
  void run();
  void stop_thread() noexcept;

  /// `epoll_wait` on the set: the number of events, 0 when interrupted
  /// (EINTR), -1 on another error.
  int wait_events(epoll_event* evs, int timeout_ms);

  /// Adds the listed actors of `n` events, then those of the readiness
  /// `yield_ready` kept, to this pass's `pending_` (under `mtx_`); true on
  /// the stop.
  bool take_ready(const epoll_event* evs, int n);

  /// The next readiness of the pass, taken from `pending_` (under `mtx_`;
  /// `last`: none follows it now); false when none is left.
  bool next_ready(ready_item& out, bool& last);

  /// On the I/O thread: hands each readiness to its actor. The ones whose
  /// turn would run here (gathering: up to `tcp-inline-turns` of them;
  /// spreading: the last, as the unit keeps the newest job) run at once
  /// without a message if their actor is idle (io_unit.hpp, `run_direct`);
  /// the others are messages, as before. The number of turns run.
  size_t deliver_ready();

  /// The watchdog saw the I/O thread in one turn (epoch `stuck`) since its
  /// last look: a handler blocks there (a sleep, a `scoped_actor`'s
  /// receive, perhaps waiting for another socket's read). Starts a standby
  /// thread that polls the sockets and sends their readiness to the
  /// scheduler until that turn ends, so no other socket waits for it.
  void rescue(uint64_t stuck);
  void run_standby(uint64_t stuck);

  std::shared_ptr<weave::internal::deadline_timer> timer_;
  /// Set before the thread starts; lives as long as the actor system.
  caf::actor_system* sys_ = nullptr;
  std::shared_ptr<io_unit> unit_;
  /// How long the thread looks for readiness after running turns before it
  /// sleeps (`weave.spin`; zero when no turns run here).
  caf::timespan spin_{0};
  /// The runtime's configuration (the key of its thread dumps).
  const void* owner_ = nullptr;
  /// Null when no turns run here (or with CAF's own scheduler policies).
  weave::internal::blocking_detector* detector_ = nullptr;
  /// A standby thread runs (at most one).
  bool standby_ = false;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::unordered_map<uint64_t, listed_actor> actors_;
  /// The readiness of the pass that the I/O thread delivers one at a time,
  /// from `next_`: one that a turn then holds leaves the rest here, where
  /// the standby takes them (else a stream whose readiness came in the
  /// same `epoll_wait` as the stuck turn's stalled until it ended).
  std::vector<ready_item> pending_;
  size_t next_ = 0;
  /// Readiness kept by `yield_ready` for the next pass: {id, events}.
  std::vector<std::pair<uint64_t, uint32_t>> again_;
  /// `again_` is not empty (the I/O thread looks without sleeping).
  std::atomic<bool> again_pending_{false};
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  bool started_ = false;
  /// The thread is bound to its unit (it reads no more files at start).
  bool bound_ = false;
  bool ended_ = false;
  bool counted_ = false;
};

} // namespace weave::actors::internal
