#include "runtime/internal/remote_pool_impl.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include "caf/actor_cast.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/defaults.hpp"
#include "caf/io/middleman.hpp"
#include "caf/send.hpp"

#include "runtime/internal/deadline_timer.hpp"
#include "runtime/internal/remote_protocol.hpp"
#include "runtime/internal/remote_tls_hook.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/this_thread.hpp"

namespace weave::internal {

namespace {

/// The client actor's reminder to try a node again.
using retry_atom = caf::atom_constant<caf::atom("wv_retry")>;

using weak_impl = std::weak_ptr<remote_pool_impl>;

void try_node(caf::event_based_actor* self, const weak_impl& weak,
              size_t index);

void attempt_failed(caf::event_based_actor* self, const weak_impl& weak,
                    size_t index, uint32_t gen, const std::string& why) {
  auto p = weak.lock();
  if (!p)
    return;
  if (auto delay = p->attempt_failed(index, gen, why))
    self->delayed_send(self, *delay, retry_atom::value,
                       static_cast<uint64_t>(index));
}

void try_node(caf::event_based_actor* self, const weak_impl& weak,
              size_t index) {
  auto p = weak.lock();
  if (!p)
    return;
  auto plan = p->begin_attempt(index);
  if (!plan)
    return;
  auto gen = plan->gen;
  auto timeout = caf::duration{plan->timeout};
  auto mm = p->middleman_actor();
  p.reset();
  self
    ->request(mm, timeout, caf::connect_atom::value, plan->host, plan->port)
    .then(
      [self, weak, index, gen, timeout](caf::node_id&,
                                        caf::strong_actor_ptr& ptr,
                                        std::set<std::string>&) {
        if (!ptr) {
          attempt_failed(self, weak, index, gen,
                         "no worker is published at that port");
          return;
        }
        auto worker = caf::actor_cast<caf::actor>(ptr);
        self
          ->request(worker, timeout, hello_atom::value,
                    static_cast<uint32_t>(index), gen)
          .then(
            [self, weak, index, gen](caf::actor& w, int32_t pid,
                                     std::vector<std::string>& table,
                                     uint32_t capacity) {
              auto q = weak.lock();
              if (!q)
                return;
              std::string why;
              // Monitored first: a DOWN after the join must not be missed.
              self->monitor(w);
              if (!q->on_join(index, gen, w, pid, table, capacity, why)) {
                self->demonitor(w);
                q.reset();
                attempt_failed(self, weak, index, gen, why);
              }
            },
            [self, weak, index, gen](caf::error& err) {
              auto q = weak.lock();
              if (!q)
                return;
              auto why = "it did not answer hello: " + q->explain(err, index);
              q.reset();
              attempt_failed(self, weak, index, gen, why);
            });
      },
      [self, weak, index, gen](caf::error& err) {
        auto q = weak.lock();
        if (!q)
          return;
        auto why = q->explain(err, index);
        // CAF 0.17.6 stamps a new outgoing connection as last seen at the
        // epoch: a heartbeat tick before the worker's handshake arrives
        // (a busy host) drops it as `connection_timeout`. Not the worker's
        // fault: tried again at once (a few times) before it counts.
        if (err == caf::sec::connection_timeout && q->transient_failure(index)) {
          q.reset();
          self->send(self, retry_atom::value, static_cast<uint64_t>(index));
          return;
        }
        q.reset();
        attempt_failed(self, weak, index, gen, why);
      });
}

caf::behavior client_actor(caf::event_based_actor* self, weak_impl weak,
                           std::string name, size_t nodes) {
  set_this_thread_name(name + "-io");
  self->set_down_handler([self, weak](caf::down_msg& dm) {
    auto p = weak.lock();
    if (!p)
      return;
    if (auto lost = p->on_down(dm.source, dm.reason))
      self->delayed_send(self, lost->second, retry_atom::value,
                         static_cast<uint64_t>(lost->first));
  });
  for (size_t i = 0; i < nodes; ++i)
    try_node(self, weak, i);
  return {
    [self, weak](retry_atom, uint64_t index) {
      try_node(self, weak, static_cast<size_t>(index));
    },
    [weak](claim_atom, uint64_t id, uint32_t slot, uint32_t gen) {
      auto p = weak.lock();
      return p != nullptr && p->on_claim(id, slot, gen);
    },
    [weak](done_atom, uint64_t id, uint32_t slot, uint32_t gen,
           std::vector<char>& result) {
      if (auto p = weak.lock())
        p->on_done(id, slot, gen, result);
    },
    [weak](failed_atom, uint64_t id, uint32_t slot, uint32_t gen,
           caf::error& err) {
      if (auto p = weak.lock())
        p->on_failed(id, slot, gen, std::move(err));
    },
  };
}

} // namespace

remote_pool_impl::remote_pool_impl(runtime& rt, remote_pool_options opts)
  : rt_(&rt), sys_(&rt.system()), opts_(std::move(opts)) {
  // nop
}

remote_pool_impl::~remote_pool_impl() {
  if (!finished_) {
    shutdown_report ignored;
    begin_shutdown(ignored);
    finish_shutdown(steady_clock::now(), ignored);
  }
}

caf::actor remote_pool_impl::middleman_actor() const {
  return connecting_actor(*sys_);
}

void remote_pool_impl::start() {
  auto bad = [](std::string what) {
    raise(make_error(errc::invalid_argument, "remote_pool: " + what));
  };
  if (opts_.workers.empty())
    bad("no workers given (remote_pool_options::workers is empty)");
  if (opts_.workers.size() > remote_pool::max_workers)
    bad("at most " + std::to_string(remote_pool::max_workers) + " workers");
  for (auto* d : {&opts_.connect_timeout, &opts_.start_timeout,
                  &opts_.reconnect_min, &opts_.reconnect_max})
    if (*d < caf::timespan::zero())
      bad("negative duration in remote_pool_options");
  if (opts_.connect_timeout == caf::timespan::zero())
    bad("connect_timeout must be positive");
  if (opts_.reconnect_min > opts_.reconnect_max)
    bad("reconnect_min is above reconnect_max");
  nodes_.resize(opts_.workers.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    auto& n = nodes_[i];
    n.address = opts_.workers[i];
    if (auto err = parse_address(n.address, n.host, n.port, false))
      raise(std::move(err));
  }
  if (!sys_->has_middleman())
    bad("CAF's middleman is not loaded: call weave::enable_remote_pools(cfg) "
        "on the runtime_config");
  app_id_ = caf::get_or(sys_->config(), "middleman.app-identifiers",
                        caf::defaults::middleman::app_identifiers)
              .front();
  if (this_thread_must_not_block())
    raise(make_error(errc::would_deadlock,
                     "remote_pool: made on a thread that must never block "
                     "(the constructor waits for its workers to connect)"));
  if (auto err = job_registry::instance().conflict())
    raise(std::move(err));
  runtime_access::register_component(*rt_, shared_from_this());
  client_ = sys_->spawn<caf::detached>(client_actor, weak_from_this(),
                                       opts_.name, nodes_.size());
  client_->attach_functor([end = client_end_] {
    {
      std::unique_lock<std::mutex> guard{end->mtx};
      end->ended = true;
    }
    end->cv.notify_all();
  });
  caf::error failure;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    auto until = saturating_add(steady_clock::now(), opts_.start_timeout);
    auto all_tried = [this] {
      return std::all_of(nodes_.begin(), nodes_.end(),
                         [](auto& n) { return n.attempted; });
    };
    cv_.wait_until(guard, until, all_tried);
    // None joined in the first round: the attempts go on (back-off) until
    // one joins or start_timeout ends.
    cv_.wait_until(guard, until, [this] { return joined_ > 0; });
    if (joined_ > 0)
      return;
    std::string why;
    for (auto& n : nodes_)
      why += (why.empty() ? "" : "; ") + n.address + ": "
             + (n.last_error.empty() ? "no answer within start_timeout"
                                     : n.last_error);
    failure = make_error(errc::io_error,
                         "remote_pool: no worker reachable (" + why + ")");
  }
  fail_start(std::move(failure));
}

void remote_pool_impl::fail_start(caf::error err) {
  shutdown_report ignored;
  begin_shutdown(ignored);
  finish_shutdown(steady_clock::now(), ignored);
  raise(std::move(err));
}

// -- jobs ---------------------------------------------------------------------

void remote_pool_impl::enqueue(remote_call_ptr c, caf::timespan timeout) {
  std::vector<outgoing> out;
  caf::error refused;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (stopping_) {
      refused = make_error(errc::shut_down, "the remote pool is shut down");
    } else if (known_.count(c->entry->name) == 0) {
      refused = make_error(errc::registry_mismatch,
                           "job '" + c->entry->name
                             + "' is not implemented by any worker of "
                               "remote pool '"
                             + opts_.name + "'");
    } else {
      c->id = next_id_++;
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
    c->job->deadline = c->deadline;
    runtime_access::timer(*rt_)->arm(c->job);
  }
}

void remote_pool_impl::dispatch_locked(std::vector<outgoing>& out) {
  while (!queue_.empty() && !stopping_) {
    auto c = queue_.front();
    if (c->done
        || (!c->started && c->job->current_state() != job::state::queued)) {
      queue_.pop_front();
      if (!c->done) {
        c->done = true;
        calls_.erase(c->id);
      }
      out.push_back({caf::actor{}, caf::actor{}, 0, std::string{}, {},
                     std::move(c)});
      continue;
    }
    node_state* best = nullptr;
    for (auto& n : nodes_)
      if (n.joined && n.held < n.capacity && n.runnable.count(c->entry->name)
          && (best == nullptr || n.held < best->held))
        best = &n;
    if (best == nullptr)
      return; // first in, first out: the head waits for credit
    queue_.pop_front();
    c->slot = static_cast<int>(best - nodes_.data());
    ++best->held;
    best->ids.insert(c->id);
    ++in_flight_;
    out.push_back(
      {best->actor, client_, c->id, c->entry->name, c->args, nullptr});
  }
}

void remote_pool_impl::send_all(std::vector<outgoing>& out) {
  for (auto& x : out)
    if (x.dest)
      caf::send_as(x.from, x.dest, run_atom::value, x.id, std::move(x.name),
                   std::move(x.args));
  out.clear();
}

void remote_pool_impl::deliver(std::vector<answer>& answers) {
  for (auto& a : answers) {
    if (a.call->started)
      a.call->job->drop(std::move(a.err));
    else
      a.call->job->cancel_with(std::move(a.err));
  }
  answers.clear();
}

void remote_pool_impl::finish_call_locked(node_state& n, uint64_t id) {
  calls_.erase(id);
  n.ids.erase(id);
  --n.held;
  if (--in_flight_ == 0)
    cv_.notify_all();
}

bool remote_pool_impl::on_claim(uint64_t id, uint32_t slot, uint32_t gen) {
  std::vector<outgoing> out;
  std::vector<answer> answers;
  bool granted = false;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    auto i = calls_.find(id);
    if (i == calls_.end() || slot >= nodes_.size())
      return false;
    auto c = i->second;
    auto& n = nodes_[slot];
    if (c->slot != static_cast<int>(slot) || n.generation != gen)
      return false;
    bool due = !c->started && c->deadline <= steady_clock::now();
    if (!due && (c->started || c->job->try_start())) {
      c->started = true;
      granted = true;
    } else {
      c->done = true;
      finish_call_locked(n, id);
      dispatch_locked(out);
      if (due)
        answers.push_back({std::move(c),
                           make_error(errc::timeout,
                                      "remote_pool: no worker started the "
                                      "job within its timeout")});
      else
        out.push_back({caf::actor{}, caf::actor{}, 0, std::string{}, {},
                     std::move(c)});
    }
  }
  send_all(out);
  deliver(answers);
  return granted;
}

void remote_pool_impl::on_done(uint64_t id, uint32_t slot, uint32_t gen,
                               const std::vector<char>& result) {
  std::vector<outgoing> out;
  remote_call_ptr c;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    auto i = calls_.find(id);
    if (i == calls_.end() || slot >= nodes_.size()
        || i->second->slot != static_cast<int>(slot)
        || nodes_[slot].generation != gen)
      return; // answered already (worker lost, shut down): dropped
    c = i->second;
    c->done = true;
    auto& n = nodes_[slot];
    finish_call_locked(n, id);
    ++n.completed;
    ++counts_.completed;
    dispatch_locked(out);
  }
  send_all(out);
  c->target->complete(result);
}

void remote_pool_impl::on_failed(uint64_t id, uint32_t slot, uint32_t gen,
                                 caf::error err) {
  std::vector<outgoing> out;
  std::vector<answer> answers;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    auto i = calls_.find(id);
    if (i == calls_.end() || slot >= nodes_.size()
        || i->second->slot != static_cast<int>(slot)
        || nodes_[slot].generation != gen)
      return;
    auto c = i->second;
    c->done = true;
    auto& n = nodes_[slot];
    finish_call_locked(n, id);
    ++n.completed;
    ++counts_.failed;
    dispatch_locked(out);
    answers.push_back({c, std::move(err)});
  }
  send_all(out);
  deliver(answers);
}

} // namespace weave::internal
