// The worker's side of a process pool (see process_pool.hpp and
// internal/remote_protocol.hpp): a weave runtime whose default pool has one
// thread per job slot, and a worker actor that connects the two.
//
// The worker actor holds the jobs the pool sent, in the order they arrived.
// A job runs only once the pool granted it: either in its `runs` message
// (the pool grants a job as it sends it while that worker's granted jobs
// are fewer than its claim window), or by a claim — several jobs in one message, up to
// `claim_window_per_thread` per thread claimed and not finished; the next
// claim goes out when half of those are done, so a thread that frees up
// rarely waits for an answer. A job refused at its claim (cancelled or
// timed out meanwhile) is dropped.
//
// A granted job starts only once no ungranted job and no claim is ahead of
// it: the pool may grant a job as it sends it while a claim's answer is
// still on its way, and jobs start in the order they arrived.
// Granted jobs go to the threads through a lane (a queue under a mutex):
// the actor appends them and starts a runner per idle thread, and a runner
// takes job after job until the lane is empty, so a stream of short jobs
// costs one hand-off per burst, not one per job. A runner tells the actor
// that results are ready with one message, sent only if none is on its
// way (the actor takes every result there when it reads it). Results go
// back to the pool several in one message: at once when no job waits in
// the lane to start, else when half a window is collected or after
// `result_delay`; errors go back as they come. A revoke (the pool's caller
// cancelled a granted job, or its timeout passed) is answered at once: a
// job the actor still holds (waiting, claimed, granted) or that waits in
// the lane is taken out and never runs; one a runner took is not. A
// runner never begins a job whose deadline has passed: it reports it late
// (`lates`), and the pool answers it `timeout`, not started.
// When the pool's connection goes away the process ends at once
// (`_Exit`): whatever it still runs has no one to answer.

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <chrono>
#include <memory>
#include <mutex>

#include "caf/actor_cast.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/io/middleman.hpp"
#include "caf/stateful_actor.hpp"

#include "runtime/internal/job.hpp"
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

/// Status of a worker process that received jobs it cannot read.
constexpr int bad_batch_status = 6;

/// Status of a worker process whose runner failed outside a job (out of
/// memory): it cannot answer that job, so the pool must lose it.
constexpr int runner_failed_status = 4;

using flush_atom = caf::atom_constant<caf::atom("wv_flush")>;

/// From a runner to its worker actor (never over the wire): results wait
/// in the lane.
using ran_atom = caf::atom_constant<caf::atom("wv_ran")>;

/// The jobs handed to the worker's threads, and their outcomes: shared by
/// the worker actor and its runners, guarded by `mtx`. No job runs and no
/// result is destroyed while it is held.
struct lane {
  std::mutex mtx;
  /// Handed over, not taken by a runner yet (a revoke still drops them).
  std::deque<run_item> jobs;
  std::vector<done_item> results;
  std::vector<std::pair<uint64_t, caf::error>> failures;
  /// Jobs not begun: their deadline had passed.
  std::vector<uint64_t> late;
  /// Runners started and not finished.
  size_t runners = 0;
  /// A `ran` message is on its way to the actor.
  bool told = false;
};

/// Runs the lane's jobs one after the other on a pool thread until it is
/// empty.
void run_lane(const std::shared_ptr<lane>& ln, const caf::actor& worker) {
  for (;;) {
    run_item job;
    {
      std::unique_lock<std::mutex> guard{ln->mtx};
      if (ln->jobs.empty()) {
        --ln->runners;
        return;
      }
      job = std::move(ln->jobs.front());
      ln->jobs.pop_front();
    }
    std::vector<char> result;
    caf::error err;
    bool late = job.deadline != no_deadline
                && std::chrono::steady_clock::now().time_since_epoch().count()
                     >= job.deadline;
    auto entry = job_registry::instance().find(job.name);
    if (late) {
      // Its deadline passed while it waited here (the pool's revoke has
      // not reached this worker yet, or lost the race): it never begins.
    } else if (entry == nullptr || entry->invoke == nullptr) {
      err = make_error(errc::registry_mismatch,
                       "job '" + job.name
                         + "' is not implemented by the worker program");
    } else {
      try {
        result = entry->invoke(*entry, job.args);
      } catch (...) {
        err = current_exception_error();
      }
    }
    bool tell = false;
    {
      std::unique_lock<std::mutex> guard{ln->mtx};
      try {
        if (late)
          ln->late.push_back(job.id);
        else if (err)
          ln->failures.emplace_back(job.id, std::move(err));
        else
          ln->results.push_back({job.id, std::move(result)});
      } catch (...) {
        // Out of memory: the job's outcome cannot be kept, and a job the
        // pool never hears of would hang its caller. Ending the process
        // makes the pool lose this worker and answer its jobs.
        std::fputs("weave worker: cannot keep a job's outcome (out of "
                   "memory)\n",
                   stderr);
        std::_Exit(runner_failed_status);
      }
      tell = !ln->told;
      ln->told = true;
    }
    if (tell)
      caf::anon_send(worker, ran_atom::value);
  }
}

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
  /// Granted jobs handed to the lane and not reported back yet.
  size_t running = 0;
  std::shared_ptr<lane> jobs_lane = std::make_shared<lane>();
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

/// Hands every granted job to the lane and starts a runner for each idle
/// thread that has a job to take.
void hand_over(worker_actor* self) {
  auto& st = self->state;
  if (st.granted.empty())
    return;
  auto& ln = *st.jobs_lane;
  size_t start = 0;
  {
    std::unique_lock<std::mutex> guard{ln.mtx};
    st.running += st.granted.size();
    for (auto& p : st.granted)
      ln.jobs.push_back(std::move(p));
    if (ln.runners < st.threads)
      start = std::min(st.threads - ln.runners, ln.jobs.size());
    ln.runners += start;
  }
  st.granted.clear();
  for (size_t i = 0; i < start; ++i)
    offload(self, *st.runner,
            [ln = st.jobs_lane, w = caf::actor_cast<caf::actor>(self)] {
              run_lane(ln, w);
            })
      .then([] {},
            [](caf::error&) {
              // Not started (the runtime stops), or the runner failed
              // outside a job (run_lane catches the jobs' exceptions and
              // ends the process where it cannot keep an outcome): the
              // process ends; the pool loses it and answers its jobs.
              std::fputs("weave worker: a runner failed outside a job\n",
                         stderr);
              std::_Exit(runner_failed_status);
            });
}

/// Takes the outcomes out of the lane (a runner told the actor).
void collect(worker_actor* self) {
  auto& st = self->state;
  std::vector<done_item> results;
  std::vector<std::pair<uint64_t, caf::error>> failures;
  std::vector<uint64_t> late;
  {
    std::unique_lock<std::mutex> guard{st.jobs_lane->mtx};
    results.swap(st.jobs_lane->results);
    failures.swap(st.jobs_lane->failures);
    late.swap(st.jobs_lane->late);
    st.jobs_lane->told = false;
  }
  st.running -= results.size() + failures.size() + late.size();
  if (!late.empty())
    self->send(st.pool, lates_atom::value, st.slot, st.gen,
               encode_batch(late));
  for (auto& [id, err] : failures)
    self->send(st.pool, failed_atom::value, id, st.slot, st.gen,
               std::move(err));
  if (st.results.empty())
    st.results = std::move(results);
  else
    for (auto& x : results)
      st.results.push_back(std::move(x));
}

/// Jobs handed to the lane that no runner took yet.
size_t waiting_in_lane(worker_actor* self) {
  auto& ln = *self->state.jobs_lane;
  std::unique_lock<std::mutex> guard{ln.mtx};
  return ln.jobs.size();
}

/// Moves the granted jobs at the head of `waiting` to `granted`, unless a
/// claim is out: jobs arrive in order, and a job granted as sent must not
/// pass older jobs waiting for their claim (the pool may grant it as it
/// sends it while that claim's answer is still on its way).
void promote(worker_actor* self) {
  auto& st = self->state;
  while (!st.claim_out && !st.waiting.empty() && st.waiting.front().granted) {
    st.granted.push_back(std::move(st.waiting.front()));
    st.waiting.pop_front();
  }
}

void claim(worker_actor* self) {
  auto& st = self->state;
  // Granted jobs parked behind the head count as held (the pool's sends
  // from two threads may arrive out of order).
  auto held = st.granted.size() + st.running
              + static_cast<size_t>(std::count_if(
                st.waiting.begin(), st.waiting.end(),
                [](const run_item& x) { return x.granted; }));
  // Claims in batches: once the claimed jobs fall to half the window; the
  // ungranted jobs at the head of `waiting` (promote moved granted ones).
  if (st.claim_out || st.waiting.empty() || st.waiting.front().granted
      || held > st.window() / 2)
    return;
  std::vector<uint64_t> ids;
  while (!st.waiting.empty() && !st.waiting.front().granted
         && held + ids.size() < st.window()) {
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
  promote(self);
  claim(self);
  hand_over(self);
  claim(self);
  // Results go back together: at once when no granted job waits to start
  // (nothing else would join them soon) or half a window is collected,
  // else after a short delay.
  if (st.results.empty())
    return;
  if (st.results.size() >= st.window() / 2 || waiting_in_lane(self) == 0) {
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
  run_item dropped; // destroyed after unlocking
  {
    std::unique_lock<std::mutex> guard{st.jobs_lane->mtx};
    auto& xs = st.jobs_lane->jobs;
    auto i = std::find_if(xs.begin(), xs.end(),
                          [id](const run_item& x) { return x.id == id; });
    if (i != xs.end()) {
      dropped = std::move(*i);
      xs.erase(i);
    }
  }
  if (dropped.id == id) {
    --st.running;
    return true;
  }
  return false; // a runner took it (maybe finished): it runs
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
  auto table = job_registry::instance().describe();
  table.emplace_back(protocol_line);
  self->send(pool, join_atom::value, caf::actor_cast<caf::actor>(self), slot,
             gen, static_cast<int32_t>(::getpid()), std::move(table));
  return {
    [self](runs_atom, std::vector<char>& bytes) {
      std::vector<run_item> jobs;
      if (!decode_batch(bytes, jobs)) {
        // Jobs this worker cannot read would never be answered: ending
        // the process makes the pool lose it and answer them.
        std::fprintf(stderr, "weave worker: unreadable jobs from the pool\n");
        std::fflush(stderr);
        std::_Exit(bad_batch_status);
      }
      // In order, granted or not (see promote).
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
    [self](ran_atom) {
      collect(self);
      pump(self);
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
