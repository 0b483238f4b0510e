// The nodes of a remote_pool: addresses, connection attempts, joining,
// losing, reporting (see remote_pool_impl.hpp).

#include <algorithm>
#include <cstdlib>

#include "caf/sec.hpp"

#include "runtime/internal/remote_pool_impl.hpp"

namespace weave::internal {

caf::error parse_address(const std::string& text, std::string& host,
                         uint16_t& port, bool allow_zero) {
  constexpr unsigned long max_port = 65535;
  auto bad = [&](const std::string& why) {
    return make_error(errc::invalid_argument,
                      "malformed worker address '" + text
                        + "' (expected host:port): " + why);
  };
  auto colon = text.rfind(':');
  if (colon == std::string::npos)
    return bad("no ':port'");
  host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty())
    return bad("no host");
  auto digits = text.substr(colon + 1);
  if (digits.empty()
      || !std::all_of(digits.begin(), digits.end(),
                      [](char ch) { return ch >= '0' && ch <= '9'; })
      || digits.size() > 5)
    return bad("the port is not a number from 1 to 65535");
  auto value = std::strtoul(digits.c_str(), nullptr, 10);
  if (value > max_port || (value == 0 && !allow_zero))
    return bad("port " + digits + " is outside 1..65535");
  port = static_cast<uint16_t>(value);
  return caf::error{};
}

std::string remote_pool_impl::explain(const caf::error& err,
                                      size_t index) const {
  if (err == caf::sec::incompatible_application_ids) {
    std::string theirs = "another";
    if (!sys_->has_openssl_manager()) {
      std::string host;
      uint16_t port = 0;
      {
        std::unique_lock<std::mutex> guard{mtx_};
        host = nodes_[index].host;
        port = nodes_[index].port;
      }
      auto ids = probe_app_ids(host, port, opts_.connect_timeout);
      if (!ids.empty()) {
        theirs.clear();
        for (auto& id : ids)
          theirs += (theirs.empty() ? "'" : ", '") + id + "'";
      }
    }
    return "refused: application ids differ: ours is '" + app_id_
           + "', the worker's " + theirs
           + " (both ends must call enable_remote_pools with the same id; "
             "CAF's middleman.app-identifiers)";
  }
  if (err == caf::sec::request_timeout)
    return "no answer within connect_timeout";
  return render(err);
}

std::optional<attempt_plan> remote_pool_impl::begin_attempt(size_t index) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (stopping_ || index >= nodes_.size() || nodes_[index].joined)
    return std::nullopt;
  auto& n = nodes_[index];
  return attempt_plan{n.host, n.port, ++n.generation, opts_.connect_timeout};
}

bool remote_pool_impl::transient_failure(size_t index) {
  std::unique_lock<std::mutex> guard{mtx_};
  auto& n = nodes_[index];
  if (stopping_ || n.transient >= max_transient)
    return false;
  ++n.transient;
  return true;
}

caf::timespan remote_pool_impl::next_backoff_locked(node_state& n) {
  if (n.backoff < opts_.reconnect_min)
    n.backoff = opts_.reconnect_min;
  auto result = n.backoff;
  n.backoff = std::min(opts_.reconnect_max, n.backoff * 2);
  return result;
}

std::optional<caf::timespan>
remote_pool_impl::attempt_failed(size_t index, uint32_t gen,
                                 const std::string& why) {
  std::unique_lock<std::mutex> guard{mtx_};
  auto& n = nodes_[index];
  if (n.generation != gen || n.joined)
    return std::nullopt;
  ++n.failed_attempts;
  n.transient = 0;
  n.last_error = why;
  if (!n.attempted) {
    n.attempted = true;
    cv_.notify_all();
  }
  if (stopping_)
    return std::nullopt;
  return next_backoff_locked(n);
}

bool remote_pool_impl::on_join(size_t index, uint32_t gen,
                               const caf::actor& worker, int32_t pid,
                               const std::vector<std::string>& table,
                               uint32_t capacity, std::string& why) {
  std::vector<outgoing> out;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    auto& n = nodes_[index];
    if (n.generation != gen || n.joined || stopping_) {
      why = "too late (shut down or superseded)";
      return false;
    }
    std::set<std::string> runnable;
    if (auto err = job_registry::instance().check(table, runnable)) {
      why = "refused: " + render(err);
      return false;
    }
    if (capacity == 0) {
      why = "refused: the worker announced capacity 0";
      return false;
    }
    n.actor = worker;
    n.joined = true;
    n.pid = pid;
    n.capacity = opts_.capacity == 0
                   ? capacity
                   : std::min<size_t>(capacity, opts_.capacity);
    n.runnable = std::move(runnable);
    known_.insert(n.runnable.begin(), n.runnable.end());
    n.backoff = caf::timespan{0};
    n.transient = 0;
    n.attempted = true;
    ++joined_;
    dispatch_locked(out);
    cv_.notify_all();
  }
  send_all(out);
  return true;
}

std::vector<remote_call_ptr>
remote_pool_impl::take_calls_locked(node_state& n) {
  std::vector<remote_call_ptr> result;
  std::vector<uint64_t> ids(n.ids.begin(), n.ids.end());
  std::sort(ids.begin(), ids.end()); // in the order they were submitted
  for (auto id : ids) {
    auto i = calls_.find(id);
    if (i == calls_.end())
      continue;
    i->second->slot = -1;
    result.push_back(i->second);
  }
  in_flight_ -= n.held;
  n.held = 0;
  n.ids.clear();
  if (in_flight_ == 0)
    cv_.notify_all();
  return result;
}

void remote_pool_impl::lose_locked(node_state& n, const std::string& why,
                                   std::vector<answer>& answers,
                                   std::vector<outgoing>& out) {
  n.joined = false;
  --joined_;
  n.actor = caf::actor{};
  ++n.losses;
  n.last_error = why;
  ++counts_.workers_lost;
  auto calls = take_calls_locked(n);
  auto where = "worker " + n.address + " (pid " + std::to_string(n.pid) + "): "
               + why;
  std::vector<answer> lost;
  // Retried calls go back to the head of the queue, in their order.
  for (auto i = calls.rbegin(); i != calls.rend(); ++i) {
    auto& c = *i;
    if (c->entry->idempotent && !c->retried && !stopping_) {
      c->retried = true;
      ++counts_.retried;
      queue_.push_front(c);
      continue;
    }
    c->done = true;
    calls_.erase(c->id);
    ++counts_.lost;
    auto text = std::string{c->started ? "maybe executed" : "not started"}
                + ": job '" + c->entry->name + "' was held by " + where;
    lost.push_back({c, make_error(errc::worker_lost, std::move(text))});
  }
  answers.insert(answers.end(), std::make_move_iterator(lost.rbegin()),
                 std::make_move_iterator(lost.rend()));
  dispatch_locked(out);
}

std::optional<std::pair<size_t, caf::timespan>>
remote_pool_impl::on_down(const caf::actor_addr& who,
                          const caf::error& reason) {
  std::vector<outgoing> out;
  std::vector<answer> answers;
  std::optional<std::pair<size_t, caf::timespan>> result;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    size_t index = 0;
    for (; index < nodes_.size(); ++index)
      if (nodes_[index].joined && nodes_[index].actor.address() == who)
        break;
    if (index == nodes_.size())
      return std::nullopt;
    auto& n = nodes_[index];
    lose_locked(n, "lost (" + render(reason) + ")", answers, out);
    if (!stopping_)
      result.emplace(index, next_backoff_locked(n));
  }
  send_all(out);
  deliver(answers);
  return result;
}

remote_pool::stats_type remote_pool_impl::stats() const {
  std::unique_lock<std::mutex> guard{mtx_};
  auto result = counts_;
  result.workers = joined_;
  result.queued = queue_.size();
  result.in_flight = in_flight_;
  return result;
}

std::vector<remote_pool::node_info> remote_pool_impl::nodes() const {
  std::unique_lock<std::mutex> guard{mtx_};
  std::vector<remote_pool::node_info> result;
  for (auto& n : nodes_) {
    remote_pool::node_info x;
    x.address = n.address;
    x.connected = n.joined;
    x.pid = n.pid;
    x.held = n.held;
    x.capacity = n.capacity;
    x.completed = n.completed;
    x.losses = n.losses;
    x.failed_attempts = n.failed_attempts;
    x.last_error = n.last_error;
    result.push_back(std::move(x));
  }
  return result;
}

} // namespace weave::internal
