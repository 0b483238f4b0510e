// The worker side of a remote pool (see remote_worker.hpp): a published
// worker actor that serves several pools (sessions), and the main of a
// worker started with `--weave-worker-listen`.
//
// The worker actor keeps, per pool (keyed by the pool actor's address), the
// slot and generation that pool gave it in `hello`; jobs of all pools wait
// in one queue, first in first out. A job is claimed from its pool before
// it starts (one claim ahead per thread); a job whose pool is gone, or
// whose claim is refused, is dropped.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>

#include "caf/actor_cast.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/io/middleman.hpp"
#include "caf/scoped_actor.hpp"
#include "caf/stateful_actor.hpp"

#include "runtime/blocking_pool.hpp"
#include "runtime/internal/remote_pool_impl.hpp"
#include "runtime/internal/remote_protocol.hpp"
#include "runtime/internal/remote_registry.hpp"
#include "runtime/internal/remote_tls_hook.hpp"
#include "runtime/offload.hpp"
#include "runtime/remote_pool.hpp"
#include "runtime/remote_worker.hpp"
#include "runtime/this_thread.hpp"

namespace weave {

namespace {

using namespace internal;

/// How long a claim may wait for its pool's answer.
constexpr auto claim_timeout = std::chrono::seconds{30};

/// How long publishing may take.
constexpr auto publish_timeout = std::chrono::seconds{30};

constexpr int bad_usage_status = 2;
constexpr int cannot_listen_status = 3;

struct session {
  caf::actor pool;
  uint32_t slot = 0;
  uint32_t gen = 0;
};

struct pending {
  caf::actor_addr from;
  uint64_t id = 0;
  std::string name;
  std::vector<char> args;
};

struct server_state {
  size_t threads = 1;
  size_t capacity = 1;
  blocking_pool* runner = nullptr;
  std::map<caf::actor_addr, session> sessions;
  std::deque<pending> waiting;
  size_t claiming = 0;
  std::deque<pending> granted;
  size_t running = 0;
};

using server_actor = caf::stateful_actor<server_state>;

void pump(server_actor* self);

void start(server_actor* self, pending p) {
  auto& st = self->state;
  auto entry = job_registry::instance().find(p.name);
  auto id = p.id;
  auto from = p.from;
  auto i = st.sessions.find(from);
  if (i == st.sessions.end())
    return;
  auto s = i->second;
  if (entry == nullptr || entry->invoke == nullptr) {
    self->send(s.pool, failed_atom::value, id, s.slot, s.gen,
               make_error(errc::registry_mismatch,
                          "job '" + p.name
                            + "' is not implemented by the worker program"));
    return;
  }
  ++st.running;
  offload(self, *st.runner,
          [entry, args = std::move(p.args)] {
            return entry->invoke(*entry, args);
          })
    .then(
      [self, from, id, s](std::vector<char>& result) {
        auto& state = self->state;
        auto j = state.sessions.find(from);
        if (j != state.sessions.end() && j->second.gen == s.gen)
          self->send(s.pool, done_atom::value, id, s.slot, s.gen,
                     std::move(result));
        --state.running;
        pump(self);
      },
      [self, from, id, s](caf::error& err) {
        auto& state = self->state;
        auto j = state.sessions.find(from);
        if (j != state.sessions.end() && j->second.gen == s.gen)
          self->send(s.pool, failed_atom::value, id, s.slot, s.gen,
                     std::move(err));
        --state.running;
        pump(self);
      });
}

void pump(server_actor* self) {
  auto& st = self->state;
  while (!st.waiting.empty()
         && st.claiming + st.granted.size() + st.running < 2 * st.threads) {
    auto p = std::move(st.waiting.front());
    st.waiting.pop_front();
    auto i = st.sessions.find(p.from);
    if (i == st.sessions.end())
      continue; // its pool is gone
    ++st.claiming;
    auto s = i->second;
    auto job = std::make_shared<pending>(std::move(p));
    self
      ->request(s.pool, claim_timeout, claim_atom::value, job->id, s.slot,
                s.gen)
      .then(
        [self, job](bool ok) {
          auto& state = self->state;
          --state.claiming;
          if (ok && state.sessions.count(job->from) != 0)
            state.granted.push_back(std::move(*job));
          pump(self);
        },
        [self](caf::error&) {
          // The pool is gone or did not answer: the job is dropped.
          --self->state.claiming;
          pump(self);
        });
  }
  while (st.running < st.threads && !st.granted.empty()) {
    auto p = std::move(st.granted.front());
    st.granted.pop_front();
    start(self, std::move(p));
  }
}

void forget(server_actor* self, const caf::actor_addr& pool) {
  auto& st = self->state;
  st.sessions.erase(pool);
  auto gone = [&](const pending& p) { return p.from == pool; };
  st.waiting.erase(std::remove_if(st.waiting.begin(), st.waiting.end(), gone),
                   st.waiting.end());
  st.granted.erase(std::remove_if(st.granted.begin(), st.granted.end(), gone),
                   st.granted.end());
}

caf::behavior server(server_actor* self, size_t threads, size_t capacity,
                     blocking_pool* runner) {
  auto& st = self->state;
  st.threads = threads;
  st.capacity = capacity;
  st.runner = runner;
  self->set_down_handler(
    [self](caf::down_msg& dm) { forget(self, dm.source); });
  return {
    [self](hello_atom, uint32_t slot, uint32_t gen) {
      auto pool = caf::actor_cast<caf::actor>(self->current_sender());
      auto& sessions = self->state.sessions;
      if (pool) {
        auto [i, added] = sessions.emplace(pool.address(), session{});
        if (added)
          self->monitor(pool);
        i->second = session{pool, slot, gen};
      }
      return caf::make_message(caf::actor_cast<caf::actor>(self),
                               static_cast<int32_t>(::getpid()),
                               job_registry::instance().describe(),
                               static_cast<uint32_t>(self->state.capacity));
    },
    [self](run_atom, uint64_t id, std::string& name,
           std::vector<char>& args) {
      auto from = caf::actor_cast<caf::actor_addr>(self->current_sender());
      if (self->state.sessions.count(from) == 0)
        return; // no hello: not a pool of ours
      self->state.waiting.push_back(
        {from, id, std::move(name), std::move(args)});
      pump(self);
    },
  };
}

} // namespace

// -- job_server ---------------------------------------------------------------

struct job_server::state {
  caf::actor_system* sys = nullptr;
  job_server_options opts;
  std::unique_ptr<blocking_pool> runner;
  caf::actor worker;
  uint16_t port = 0;
  bool stopped = false;
};

job_server::job_server(runtime& rt, job_server_options opts)
  : state_(std::make_unique<state>()) {
  auto bad = [](std::string what) {
    raise(make_error(errc::invalid_argument, "job_server: " + what));
  };
  auto& sys = rt.system();
  if (opts.threads == 0 || opts.threads > process_pool::max_threads_per_worker)
    bad("threads must be 1.."
        + std::to_string(process_pool::max_threads_per_worker));
  if (opts.capacity < opts.threads)
    bad("capacity (" + std::to_string(opts.capacity)
        + ") is below threads (" + std::to_string(opts.threads) + ")");
  if (opts.host.empty())
    bad("empty host");
  if (!sys.has_middleman())
    bad("CAF's middleman is not loaded: call weave::enable_remote_pools(cfg)");
  if (this_thread_must_not_block())
    raise(make_error(errc::would_deadlock,
                     "job_server: made on a thread that must never block"));
  auto& st = *state_;
  st.sys = &sys;
  st.opts = std::move(opts);
  st.runner = std::make_unique<blocking_pool>(rt, st.opts.threads,
                                              st.opts.name);
  st.worker = sys.spawn(server, st.opts.threads, st.opts.capacity,
                        st.runner.get());
  auto mm = connecting_actor(sys);
  caf::error failure;
  {
    caf::scoped_actor self{sys};
    self
      ->request(mm, publish_timeout, caf::publish_atom::value, st.opts.port,
                caf::actor_cast<caf::strong_actor_ptr>(st.worker),
                std::set<std::string>{}, st.opts.host, false)
      .receive([&](uint16_t actual) { st.port = actual; },
               [&](caf::error& err) { failure = std::move(err); });
  }
  if (failure) {
    caf::anon_send_exit(st.worker, caf::exit_reason::user_shutdown);
    raise(make_error(errc::io_error,
                     "job_server: cannot listen on " + st.opts.host + ":"
                       + std::to_string(st.opts.port) + ": "
                       + render(failure)));
  }
}

job_server::~job_server() {
  stop();
}

uint16_t job_server::port() const noexcept {
  return state_->port;
}

void job_server::stop() {
  auto& st = *state_;
  if (st.stopped)
    return;
  st.stopped = true;
  if (!this_thread_must_not_block())
    (void) st.sys->middleman().unpublish(st.worker, st.port);
  caf::anon_send_exit(st.worker, caf::exit_reason::user_shutdown);
  st.worker = caf::actor{};
  st.runner.reset();
}

// -- the listening worker's main ----------------------------------------------

namespace internal {

namespace {

constexpr const char listen_flag[] = "--weave-worker-listen=";

bool take(const char* arg, const char* flag, std::string& value) {
  auto n = std::strlen(flag);
  if (std::strncmp(arg, flag, n) != 0)
    return false;
  value = arg + n;
  return true;
}

bool to_size(const std::string& text, size_t& out) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos
      || text.size() > 9)
    return false;
  out = std::strtoul(text.c_str(), nullptr, 10);
  return true;
}

} // namespace

bool is_listening_worker(int argc, char** argv) noexcept {
  for (int i = 1; i < argc; ++i)
    if (argv[i] != nullptr
        && std::strncmp(argv[i], listen_flag, sizeof(listen_flag) - 1) == 0)
      return true;
  return false;
}

int run_listening_worker(int argc, char** argv) {
  auto usage = [&](const std::string& why) {
    std::fprintf(stderr, "%s: %s\n", argc > 0 ? argv[0] : "worker",
                 why.c_str());
    return bad_usage_status;
  };
  job_server_options opts;
  std::string address;
  std::string app_id = default_app_id;
  tls_options tls;
  bool use_tls = false;
  for (int i = 1; i < argc; ++i) {
    std::string v;
    const char* a = argv[i];
    if (take(a, listen_flag, address)) {
    } else if (take(a, "--weave-worker-threads=", v)) {
      if (!to_size(v, opts.threads) || opts.threads == 0)
        return usage("--weave-worker-threads needs a positive number");
    } else if (take(a, "--weave-worker-capacity=", v)) {
      if (!to_size(v, opts.capacity) || opts.capacity == 0)
        return usage("--weave-worker-capacity needs a positive number");
    } else if (take(a, "--weave-app-id=", app_id)) {
    } else if (take(a, "--weave-tls-certificate=", tls.certificate)
               || take(a, "--weave-tls-key=", tls.key)
               || take(a, "--weave-tls-ca=", tls.ca_file)
               || take(a, "--weave-tls-passphrase=", tls.passphrase)) {
      use_tls = true;
    } else if (std::strcmp(a, "--weave-tls-unauthenticated") == 0) {
      use_tls = true;
      tls.allow_unauthenticated = true;
    } else {
      return usage(std::string{"unknown argument '"} + a + "'");
    }
  }
  if (auto err = parse_address(address, opts.host, opts.port, true))
    return usage(render(err));
  if (opts.capacity < opts.threads)
    opts.capacity = opts.threads;
  // SIGTERM and SIGINT are taken by sigwait below, on this thread; every
  // thread started from here on inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  try {
    runtime_config cfg;
    if (use_tls) {
      if (tls_hook() == nullptr)
        return usage("TLS flags need a worker program linked with "
                     "//runtime:remote_tls");
      tls_hook()(cfg, app_id, tls);
    } else {
      enable_remote_pools(cfg, app_id);
    }
    runtime rt{std::move(cfg)};
    job_server server{rt, opts};
    std::printf("weave worker listening on %s:%u pid %d\n", opts.host.c_str(),
                static_cast<unsigned>(server.port()),
                static_cast<int>(::getpid()));
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(0);
  } catch (const exception& e) {
    std::fprintf(stderr, "weave worker: %s\n", e.what());
    std::fflush(stderr);
    std::_Exit(e.code() == errc::invalid_argument ? bad_usage_status
                                                  : cannot_listen_status);
  }
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(0);
}

} // namespace internal

} // namespace weave
