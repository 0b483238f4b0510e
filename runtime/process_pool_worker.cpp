// The worker's side of a process pool (see process_pool.hpp and
// internal/remote_protocol.hpp): a weave runtime whose default pool has one
// thread per job slot, and a worker actor that connects the two.
//
// The worker actor holds the jobs the pool sent, in order. It claims jobs
// before starting them, several in one message (up to
// `claim_window_per_thread` per thread claimed and not finished; the next
// claim goes out when half of those are done, so a thread that frees up
// rarely waits for an answer), and starts a granted job when a thread is
// free; a job refused at its claim (cancelled or timed out meanwhile) is
// dropped. Results go back several in one message: at once when no granted
// job waits to start, else when half a window is collected or after
// `result_delay`; errors go back as they come. A revoke (the pool's caller
// cancelled a claimed job, or its timeout passed) is answered at once: the
// actor alone hands jobs to the threads, so a job it still holds (waiting,
// claimed, granted) is dropped and never runs; one handed over is not.
// When the pool's
// connection goes away the process ends at once (`_Exit`): whatever it
// still runs has no one to answer.

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <chrono>

#include "caf/actor_cast.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/io/middleman.hpp"
#include "caf/stateful_actor.hpp"

#include "runtime/internal/process_pool_batch.hpp"
#include "runtime/internal/remote_protocol.hpp"
#include "runtime/internal/remote_registry.hpp"
#include "runtime/offload.hpp"
#include "runtime/process_pool.hpp"
#include "runtime/internal/remote_pool_impl.hpp"
#include "runtime/remote_worker.hpp"
#include "runtime/runtime.hpp"

namespace weave {

namespace {

using namespace internal;

/// Status of a worker process that could not reach its pool.
constexpr int cannot_connect_status = 3;

/// Status of a worker process started with unreadable arguments.
constexpr int bad_usage_status = 2;

using flush_atom = caf::atom_constant<caf::atom("wv_flush")>;

/// The longest a finished job's result waits in the worker for others to
/// join it in one message (while the next jobs run).
constexpr auto result_delay = std::chrono::microseconds{500};

struct worker_state {
  caf::actor pool;
  uint32_t slot = 0;
  uint32_t gen = 0;
  size_t threads = 1;
  blocking_pool* runner = nullptr;
  std::promise<void>* gone = nullptr;
  std::deque<run_item> waiting;
  /// The jobs of the claim in flight (at most one).
  std::vector<run_item> claiming;
  /// Jobs of `claiming` revoked before the claim's answer came.
  std::vector<uint64_t> revoked_claims;
  bool claim_out = false;
  std::deque<run_item> granted;
  size_t running = 0;
  std::vector<done_item> results;
  bool flush_armed = false;

  size_t window() const {
    return threads * claim_window_per_thread;
  }
};

using worker_actor = caf::stateful_actor<worker_state>;

void pump(worker_actor* self);

void flush(worker_actor* self) {
  auto& st = self->state;
  if (st.results.empty())
    return;
  self->send(st.pool, dones_atom::value, st.slot, st.gen,
             encode_batch(st.results));
  st.results.clear();
}

void start(worker_actor* self, run_item p) {
  auto& st = self->state;
  auto entry = job_registry::instance().find(p.name);
  auto id = p.id;
  if (entry == nullptr || entry->invoke == nullptr) {
    self->send(st.pool, failed_atom::value, id, st.slot, st.gen,
               make_error(errc::registry_mismatch,
                          "job '" + p.name + "' is not implemented by the "
                                             "worker program"));
    return;
  }
  ++st.running;
  offload(self, *st.runner,
          [entry, args = std::move(p.args)] {
            return entry->invoke(*entry, args);
          })
    .then(
      [self, id](std::vector<char>& result) {
        auto& s = self->state;
        s.results.push_back({id, std::move(result)});
        --s.running;
        pump(self);
      },
      [self, id](caf::error& err) {
        auto& s = self->state;
        self->send(s.pool, failed_atom::value, id, s.slot, s.gen,
                   std::move(err));
        --s.running;
        pump(self);
      });
}

void claim(worker_actor* self) {
  auto& st = self->state;
  auto held = st.granted.size() + st.running;
  // Claims in batches: once the claimed jobs fall to half the window.
  if (st.claim_out || st.waiting.empty() || held > st.window() / 2)
    return;
  std::vector<uint64_t> ids;
  while (!st.waiting.empty() && held + ids.size() < st.window()) {
    ids.push_back(st.waiting.front().id);
    st.claiming.push_back(std::move(st.waiting.front()));
    st.waiting.pop_front();
  }
  st.claim_out = true;
  self
    ->request(st.pool, caf::infinite, claims_atom::value, st.slot, st.gen,
              encode_batch(ids))
    .then(
      [self](std::vector<char>& granted) {
        auto& s = self->state;
        auto revoked = [&s](uint64_t id) {
          return std::find(s.revoked_claims.begin(), s.revoked_claims.end(),
                           id)
                 != s.revoked_claims.end();
        };
        for (size_t i = 0; i < s.claiming.size(); ++i)
          if (i < granted.size() && granted[i] != 0
              && !revoked(s.claiming[i].id))
            s.granted.push_back(std::move(s.claiming[i]));
        s.claiming.clear();
        s.revoked_claims.clear();
        s.claim_out = false;
        pump(self);
      },
      [](caf::error&) {
        // The pool is gone: its DOWN ends this process.
      });
}

void pump(worker_actor* self) {
  auto& st = self->state;
  claim(self);
  while (st.running < st.threads && !st.granted.empty()) {
    auto p = std::move(st.granted.front());
    st.granted.pop_front();
    start(self, std::move(p));
  }
  claim(self);
  // Results go back together: at once when no granted job waits to start
  // (nothing else would join them soon) or half a window is collected,
  // else after a short delay.
  if (st.results.empty())
    return;
  if (st.granted.empty() || st.results.size() >= st.window() / 2) {
    flush(self);
  } else if (!st.flush_armed) {
    st.flush_armed = true;
    self->delayed_send(self, result_delay, flush_atom::value);
  }
}

/// Drops job `id` if it was not handed to a thread yet: true if it never
/// runs here.
bool revoke(worker_actor* self, uint64_t id) {
  auto& st = self->state;
  auto take = [id](std::deque<run_item>& xs) {
    auto i = std::find_if(xs.begin(), xs.end(),
                          [id](const run_item& x) { return x.id == id; });
    if (i == xs.end())
      return false;
    xs.erase(i);
    return true;
  };
  if (take(st.granted) || take(st.waiting))
    return true;
  for (auto& x : st.claiming)
    if (x.id == id) {
      st.revoked_claims.push_back(id);
      return true;
    }
  return false; // handed to a thread (maybe finished): it runs
}

caf::behavior worker(worker_actor* self, caf::actor pool, uint32_t slot,
                     uint32_t gen, size_t threads, blocking_pool* runner,
                     std::promise<void>* gone) {
  auto& st = self->state;
  st.pool = pool;
  st.slot = slot;
  st.gen = gen;
  st.threads = threads;
  st.runner = runner;
  st.gone = gone;
  self->monitor(pool);
  self->set_down_handler([self](caf::down_msg& dm) {
    if (dm.source == self->state.pool) {
      self->state.gone->set_value();
      self->quit();
    }
  });
  self->send(pool, join_atom::value, caf::actor_cast<caf::actor>(self), slot, gen,
             static_cast<int32_t>(::getpid()),
             job_registry::instance().describe());
  return {
    [self](runs_atom, std::vector<char>& bytes) {
      std::vector<run_item> jobs;
      if (!decode_batch(bytes, jobs))
        return;
      for (auto& x : jobs)
        self->state.waiting.push_back(std::move(x));
      pump(self);
    },
    [self](revoke_atom, uint64_t id) {
      auto& s = self->state;
      auto dropped = revoke(self, id);
      self->send(s.pool, revoked_atom::value, id, s.slot, s.gen, dropped);
      if (dropped)
        pump(self); // room for the next claim, maybe no job left to wait
    },
    [self](flush_atom) {
      self->state.flush_armed = false;
      flush(self);
    },
    [self](hello_atom) {
      return caf::make_message(caf::actor_cast<caf::actor>(self),
                               static_cast<int32_t>(::getpid()),
                               job_registry::instance().describe());
    },
  };
}

} // namespace

bool is_worker_process(int argc, char** argv) noexcept {
  if (internal::is_listening_worker(argc, argv))
    return true; // a remote pool's worker (remote_worker.hpp)
  return argc >= 2 && argv[1] != nullptr
         && std::strcmp(argv[1], worker_flag) == 0;
}

int run_worker_process(int argc, char** argv) {
  if (internal::is_listening_worker(argc, argv))
    return internal::run_listening_worker(argc, argv);
  constexpr int expected_args = 7;
  if (!is_worker_process(argc, argv) || argc != expected_args) {
    std::fprintf(stderr,
                 "%s: not started by a weave process_pool (expected %s host "
                 "port slot generation threads)\n",
                 argc > 0 ? argv[0] : "worker", worker_flag);
    return bad_usage_status;
  }
  std::string host = argv[2];
  auto port = static_cast<uint16_t>(std::strtoul(argv[3], nullptr, 10));
  auto slot = static_cast<uint32_t>(std::strtoul(argv[4], nullptr, 10));
  auto gen = static_cast<uint32_t>(std::strtoul(argv[5], nullptr, 10));
  auto threads = static_cast<size_t>(std::strtoul(argv[6], nullptr, 10));
  if (threads == 0)
    return bad_usage_status;
  runtime_config cfg;
  // Heartbeats as often as the pool expects them (see spawn_worker).
  if (auto hb = std::getenv(worker_heartbeat_env)) {
    auto interval = std::strtoll(hb, nullptr, 10);
    if (interval > 0)
      cfg.set("middleman.heartbeat-interval", caf::timespan{interval});
  }
  enable_process_pools(cfg);
  // No connection timeout on the worker's side: CAF 0.17.6 creates the
  // state of an outgoing connection with a "last seen" time of zero (the
  // clock's epoch) until the pool's handshake arrives, so a heartbeat tick
  // during the connect would drop the connection as timed out and the
  // worker could never join. The worker needs no timeout: it ends when
  // its connection closes, and the kernel kills it when its pool's slot
  // thread ends (PR_SET_PDEATHSIG). The pool keeps its own timeout.
  cfg.set("middleman.connection-timeout", caf::timespan{0});
  cfg.set("weave.pool-size", threads);
  // The pool threads do not spin while idle: the worker's actor hands them
  // every job, and a spinning thread takes the core that the worker's and
  // the pool's middleman threads need to bring the next jobs (measured:
  // bench/README.md, process pools).
  cfg.set("weave.spin", caf::timespan{0});
  // The pool that started this worker is trusted: its application ids
  // (remote_pool.hpp) are taken as this worker's, whatever they are.
  auto app_ids = internal::probe_app_ids(host, port, std::chrono::seconds{5});
  if (!app_ids.empty())
    cfg.set("middleman.app-identifiers", std::move(app_ids));
  runtime rt{std::move(cfg)};
  auto pool = rt.system().middleman().remote_actor(host, port);
  if (!pool) {
    std::fprintf(stderr, "weave worker: cannot reach its pool at %s:%u: %s\n",
                 host.c_str(), static_cast<unsigned>(port),
                 render(pool.error()).c_str());
    std::fflush(stderr);
    std::_Exit(cannot_connect_status);
  }
  std::promise<void> gone;
  auto done = gone.get_future();
  rt.system().spawn(worker, *pool, slot, gen, threads, &rt.default_pool(),
                    &gone);
  done.wait();
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(0);
}

} // namespace weave
