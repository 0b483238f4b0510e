#include "runtime/internal/process_pool_impl.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <optional>

#include "caf/event_based_actor.hpp"
#include "caf/io/middleman.hpp"
#include "caf/send.hpp"

#include "runtime/internal/pool_hooks.hpp"
#include "runtime/internal/process_pool_batch.hpp"
#include "runtime/internal/remote_protocol.hpp"
#include "runtime/internal/deadline_timer.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/this_thread.hpp"

namespace weave::internal {

namespace {

caf::behavior client_actor(caf::event_based_actor* self,
                           std::weak_ptr<process_pool_impl> weak,
                           std::string name) {
  set_this_thread_name(name + "-io");
  self->set_down_handler([weak](caf::down_msg& dm) {
    if (auto p = weak.lock())
      p->on_down(dm.source, dm.reason);
  });
  return {
    [self, weak](join_atom, caf::actor& worker, uint32_t slot, uint32_t gen,
                 int32_t pid, std::vector<std::string>& table) {
      if (auto p = weak.lock()) {
        self->monitor(worker);
        p->on_join(worker, slot, gen, pid, table);
      }
    },
    [weak](failed_atom, uint64_t id, uint32_t slot, uint32_t gen,
           caf::error& err) {
      if (auto p = weak.lock())
        p->on_failed(id, slot, gen, std::move(err));
    },
    [weak](claims_atom, uint32_t slot, uint32_t gen,
           std::vector<char>& ids) {
      auto p = weak.lock();
      return p != nullptr ? p->on_claims(slot, gen, ids) : std::vector<char>{};
    },
    [weak](dones_atom, uint32_t slot, uint32_t gen,
           std::vector<char>& items) {
      if (auto p = weak.lock())
        p->on_dones(slot, gen, items);
    },
    [weak](lates_atom, uint32_t slot, uint32_t gen, std::vector<char>& ids) {
      if (auto p = weak.lock())
        p->on_lates(slot, gen, ids);
    },
    [weak](cancel_atom, uint64_t id, uint32_t slot, uint32_t gen) {
      if (auto p = weak.lock())
        p->on_cancel_grace(id, slot, gen);
    },
    [weak](revoked_atom, uint64_t id, uint32_t slot, uint32_t gen,
           bool dropped) {
      if (auto p = weak.lock())
        p->on_revoked(id, slot, gen, dropped);
    },
  };
}

} // namespace

process_pool_impl::process_pool_impl(runtime& rt, process_pool_options opts)
  : rt_(&rt),
    sys_(&rt.system()),
    opts_(std::move(opts)),
    cancel_grace_(rt.config().cancel_grace()) {
  // nop
}

process_pool_impl::~process_pool_impl() {
  if (!finished_) {
    shutdown_report ignored;
    begin_shutdown(ignored);
    finish_shutdown(steady_clock::now(), ignored);
  }
}

void process_pool_impl::start() {
  auto bad = [](std::string what) {
    raise(make_error(errc::invalid_argument, "process_pool: " + what));
  };
  if (opts_.workers == 0 || opts_.workers > process_pool::max_workers)
    bad("workers must be 1.." + std::to_string(process_pool::max_workers)
        + ", got " + std::to_string(opts_.workers));
  if (opts_.threads_per_worker == 0
      || opts_.threads_per_worker > process_pool::max_threads_per_worker)
    bad("threads_per_worker must be 1.."
        + std::to_string(process_pool::max_threads_per_worker));
  if (opts_.capacity < opts_.threads_per_worker)
    bad("capacity (" + std::to_string(opts_.capacity)
        + ") is below threads_per_worker");
  if (opts_.start_timeout < caf::timespan::zero())
    bad("negative start_timeout");
  if (opts_.respawn_backoff <= caf::timespan::zero()
      || opts_.max_respawn_backoff < opts_.respawn_backoff)
    bad("respawn_backoff must be positive and at most max_respawn_backoff");
  if (std::getenv(worker_env) != nullptr)
    bad("a process pool cannot be made inside a worker process (does "
        "main() start with WEAVE_PROCESS_WORKER_MAIN(argc, argv)?)");
  if (opts_.program.empty()) {
    program_ = "/proc/self/exe";
  } else {
    char resolved[PATH_MAX];
    if (::realpath(opts_.program.c_str(), resolved) == nullptr
        || ::access(resolved, X_OK) != 0)
      bad("worker program '" + opts_.program
          + "' not found or not executable");
    program_ = resolved;
  }
  if (!sys_->has_middleman())
    bad("CAF's middleman is not loaded: call "
        "weave::enable_process_pools(cfg) on the runtime_config");
  if (this_thread_must_not_block())
    raise(make_error(errc::would_deadlock,
                     "process_pool: made on a thread that must never block "
                     "(the constructor waits for its workers to connect)"));
  if (auto err = job_registry::instance().conflict())
    raise(std::move(err));
  runtime_access::register_component(*rt_, shared_from_this());
  client_ = sys_->spawn<caf::detached>(client_actor, weak_from_this(),
                                       opts_.name);
  client_->attach_functor([end = client_end_] {
    {
      std::unique_lock<std::mutex> guard{end->mtx};
      end->ended = true;
    }
    end->cv.notify_all();
  });
  auto port = sys_->middleman().publish(client_, 0, "127.0.0.1");
  if (!port) {
    fail_start(make_error(errc::io_error, "process_pool: cannot listen on "
                                          "127.0.0.1: "
                                            + render(port.error())));
  }
  port_ = *port;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    slots_.resize(opts_.workers);
    for (size_t i = 0; i < slots_.size(); ++i)
      slots_[i].thread = std::thread{[this, i] { slot_main(i); }};
    auto until = saturating_add(steady_clock::now(), opts_.start_timeout);
    auto ready = cv_.wait_until(guard, until, [this] {
      return start_error_ || joined_ == opts_.workers;
    });
    if (!start_error_ && !ready)
      start_error_ = make_error(errc::timeout,
                                "process_pool: not every worker connected "
                                "within start_timeout");
    if (!start_error_) {
      starting_ = false;
      return;
    }
  }
  fail_start(start_error_);
}

void process_pool_impl::fail_start(caf::error err) {
  shutdown_report ignored;
  begin_shutdown(ignored);
  finish_shutdown(steady_clock::now(), ignored);
  raise(std::move(err));
}

// -- jobs ---------------------------------------------------------------------

void process_pool_impl::enqueue(remote_call_ptr c, caf::timespan timeout) {
  std::vector<outgoing> out;
  caf::error refused;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (stopping_) {
      refused = make_error(errc::shut_down, "the process pool is shut down");
    } else if (runnable_.count(c->entry->name) == 0) {
      refused = make_error(errc::registry_mismatch,
                           "job '" + c->entry->name
                             + "' is not implemented by the worker program "
                             + program_);
    } else {
      c->id = next_id_++;
      c->target->stopper = weak_from_this();
      c->target->call_id = c->id;
      calls_.emplace(c->id, c);
      queue_.push_back(c);
      dispatch_locked(out);
    }
  }
  if (refused) {
    c->job->cancel_with(std::move(refused));
    return;
  }
  send_all(out);
  if (timeout != caf::timespan::max()) {
    // At the deadline, a job no worker has started is answered `timeout`
    // and never runs (its claim is refused).
    c->job->deadline = c->deadline;
    runtime_access::timer(*rt_)->arm(c->job);
  }
}

void process_pool_impl::retire_locked(call_map::iterator i, slot_state& s) {
  auto& c = *i->second;
  c.done = true;
  c.in_transit = false;
  c.revoke_deferred = false;
  if (c.holds_grant) {
    c.holds_grant = false;
    --s.granted;
  }
  s.ids.erase(i->first);
  calls_.erase(i);
  --s.held;
  if (--in_flight_ == 0)
    cv_.notify_all();
}

void process_pool_impl::dispatch_locked(std::vector<outgoing>& out) {
  auto window = grant_window();
  std::optional<steady_clock::time_point> now;
  while (!queue_.empty() && !stopping_) {
    auto c = queue_.front();
    if (c->done
        || (!c->started && c->job->current_state() != job::state::queued)) {
      // Answered while it waited here (cancelled, timed out).
      queue_.pop_front();
      if (!c->done) {
        c->done = true;
        calls_.erase(c->id);
      }
      out.push_back({caf::actor{}, 0, std::string{}, {}, std::move(c)});
      continue;
    }
    slot_state* best = nullptr;
    for (auto& s : slots_)
      if (s.joined && !s.lost && s.held < opts_.capacity
          && (best == nullptr || s.held < best->held))
        best = &s;
    if (best == nullptr)
      return;
    queue_.pop_front();
    c->slot = static_cast<int>(best - slots_.data());
    // A retried call until its new worker claims it: a revoke may overtake
    // it, so that worker's "runs" means nothing until then.
    c->regranting = c->started;
    // Granted as sent: a fresh call, to a worker with no call waiting for
    // its claim (granted calls never pass older ones there) and room in
    // its window; a call due already goes out ungranted (its claim
    // refuses it).
    bool grant = !c->started && best->held == best->granted
                 && best->granted < window;
    if (grant && c->deadline != steady_clock::time_point::max()) {
      if (!now)
        now = steady_clock::now();
      grant = c->deadline > *now;
    }
    grant = grant && c->job->try_start();
    ++best->held;
    best->ids.insert(c->id);
    ++in_flight_;
    outgoing x{best->actor, c->id, c->entry->name, c->args, nullptr};
    x.deadline = c->deadline.time_since_epoch().count();
    if (grant) {
      c->started = true;
      c->holds_grant = true;
      c->in_transit = true;
      ++best->granted;
      x.granted = true;
      x.slot = static_cast<uint32_t>(c->slot);
      x.gen = best->generation;
      x.keep = std::move(c);
    }
    out.push_back(std::move(x));
  }
}

size_t process_pool_impl::grant_window() const noexcept {
  return std::min(opts_.capacity,
                  opts_.threads_per_worker * claim_window_per_thread);
}

void process_pool_impl::send_all(std::vector<outgoing>& out) {
  // One message per worker, its jobs in their order.
  std::vector<std::pair<caf::actor, std::vector<run_item>>> batches;
  bool any_granted = false;
  for (auto& x : out) {
    if (!x.dest)
      continue;
    auto i = std::find_if(batches.begin(), batches.end(),
                          [&](const auto& b) { return b.first == x.dest; });
    if (i == batches.end()) {
      batches.emplace_back(x.dest, std::vector<run_item>{});
      i = batches.end() - 1;
    }
    i->second.push_back({x.id, std::move(x.name), std::move(x.args),
                         x.granted, x.deadline});
    any_granted = any_granted || x.granted;
  }
  if (any_granted)
    run_pool_hook(pool_hook_point::granted_send, opts_.name);
  for (auto& b : batches)
    caf::anon_send(b.first, runs_atom::value, encode_batch(b.second));
  run_messages_.fetch_add(batches.size(), std::memory_order_relaxed);
  if (any_granted) {
    // Their messages are with CAF now: a revoke sent from here on comes
    // after them.
    std::vector<std::pair<caf::actor, uint64_t>> revokes;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      for (auto& x : out) {
        if (!x.granted || !x.keep->in_transit)
          continue; // taken out meanwhile (answered, its worker lost)
        auto& c = *x.keep;
        c.in_transit = false;
        if (!c.revoke_deferred)
          continue;
        c.revoke_deferred = false;
        auto& s = slots_[x.slot];
        if (c.slot == static_cast<int>(x.slot) && s.generation == x.gen
            && !s.lost && s.actor)
          revokes.emplace_back(s.actor, c.id);
      }
    }
    for (auto& r : revokes)
      send_revoke(r.first, r.second);
    for (auto& x : out)
      if (x.granted && x.keep->deadline != steady_clock::time_point::max())
        arm_revoke_watch(x.keep, x.slot, x.gen);
  }
  out.clear(); // the last references of calls taken out, after unlocking
}

void process_pool_impl::deliver(std::vector<answer>& answers) {
  for (auto& a : answers) {
    if (a.call->started)
      a.call->job->drop(std::move(a.err));
    else
      a.call->job->cancel_with(std::move(a.err));
  }
  answers.clear();
}

std::vector<remote_call_ptr>
process_pool_impl::take_calls_locked(slot_state& s) {
  std::vector<remote_call_ptr> result;
  std::vector<uint64_t> ids(s.ids.begin(), s.ids.end());
  std::sort(ids.begin(), ids.end()); // in the order they were submitted
  for (auto id : ids) {
    auto i = calls_.find(id);
    if (i == calls_.end())
      continue;
    auto& c = *i->second;
    c.slot = -1;
    c.holds_grant = false;
    c.in_transit = false;
    c.revoke_deferred = false;
    result.push_back(i->second);
  }
  in_flight_ -= s.held;
  s.held = 0;
  s.granted = 0;
  s.ids.clear();
  if (in_flight_ == 0)
    cv_.notify_all();
  return result;
}

void process_pool_impl::on_failed(uint64_t id, uint32_t slot, uint32_t gen,
                                  caf::error err) {
  std::vector<outgoing> out;
  std::vector<answer> answers;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    ++counts_.result_messages;
    auto i = held_locked(id, slot, gen);
    if (i == calls_.end())
      return;
    auto c = i->second;
    retire_locked(i, slots_[slot]);
    ++counts_.failed;
    dispatch_locked(out);
    answers.push_back({c, std::move(err)});
  }
  send_all(out);
  deliver(answers);
}

process_pool::stats_type process_pool_impl::stats() const {
  std::unique_lock<std::mutex> guard{mtx_};
  auto result = counts_;
  result.workers = joined_;
  result.queued = queue_.size();
  result.in_flight = in_flight_;
  result.run_messages = run_messages_.load(std::memory_order_relaxed);
  return result;
}

size_t process_pool_impl::claimed() const {
  std::unique_lock<std::mutex> guard{mtx_};
  size_t n = 0;
  for (auto& kv : calls_)
    if (kv.second->started && kv.second->slot >= 0)
      ++n;
  return n;
}

std::vector<int> process_pool_impl::worker_pids() const {
  std::unique_lock<std::mutex> guard{mtx_};
  std::vector<int> result;
  for (auto& s : slots_)
    result.push_back(static_cast<int>(s.pid));
  return result;
}

} // namespace weave::internal
