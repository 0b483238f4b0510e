// A remote_pool's shutdown: answering what is queued and held, and
// stopping the client actor (see remote_pool_impl.hpp).

#include <chrono>
#include <thread>

#include "caf/send.hpp"

#include "runtime/internal/remote_pool_impl.hpp"
#include "runtime/this_thread.hpp"

namespace weave::internal {

namespace {

/// How long a shutdown waits for the client actor's thread to end.
constexpr auto client_patience = std::chrono::milliseconds{100};

} // namespace

// -- shutdown -----------------------------------------------------------------

void remote_pool_impl::begin_shutdown(shutdown_report& report) {
  std::vector<remote_call_ptr> queued;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (stopping_)
      return;
    stopping_ = true;
    for (auto& c : queue_) {
      if (c->done)
        continue;
      c->done = true;
      calls_.erase(c->id);
      queued.push_back(c);
    }
    queue_.clear();
  }
  cv_.notify_all();
  for (auto& c : queued) {
    auto err = make_error(errc::shut_down, "the remote pool is shut down");
    if (c->started ? c->job->drop(std::move(err))
                   : c->job->cancel_with(std::move(err)))
      ++report.jobs_cancelled;
  }
}

bool remote_pool_impl::settle_jobs(steady_clock::time_point deadline,
                                   shutdown_report& report) {
  std::vector<remote_call_ptr> held;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (settled_ != 0) {
      // Another caller settles (see process_pool_impl::settle_jobs).
      cv_.wait_until(guard, deadline, [this] { return settled_ == 2; });
      return !finished_;
    }
    settled_ = 1;
    cv_.wait_until(guard, deadline, [this] { return in_flight_ == 0; });
    for (auto& n : nodes_)
      for (auto& c : take_calls_locked(n)) {
        c->done = true;
        calls_.erase(c->id);
        held.push_back(c);
      }
    report.jobs_completed += counts_.completed + counts_.failed;
  }
  for (auto& c : held) {
    auto err = make_error(errc::shut_down, "the remote pool is shut down");
    if (c->started) {
      if (c->job->drop(std::move(err)))
        ++report.jobs_abandoned;
    } else if (c->job->cancel_with(std::move(err))) {
      ++report.jobs_cancelled;
    }
  }
  {
    std::unique_lock<std::mutex> guard{mtx_};
    settled_ = 2;
  }
  cv_.notify_all();
  return true;
}

void remote_pool_impl::finish_shutdown(steady_clock::time_point deadline,
                                       shutdown_report& report) {
  if (!settle_jobs(deadline, report))
    return;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (finished_)
      return;
    finished_ = true;
  }
  stop_client();
}

void remote_pool_impl::stop_client() {
  caf::actor client;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    client = client_;
  }
  if (!client)
    return;
  auto before = sys_->detached_actors();
  caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
  client = caf::actor{};
  if (this_thread_must_not_block())
    return;
  auto until = steady_clock::now() + client_patience;
  {
    std::unique_lock<std::mutex> guard{client_end_->mtx};
    client_end_->cv.wait_until(guard, until,
                               [this] { return client_end_->ended; });
  }
  // Its thread ends right after the actor: CAF's count tells when.
  while (sys_->detached_actors() >= before && steady_clock::now() < until)
    std::this_thread::yield();
}

void remote_pool_impl::release_actors() noexcept {
  caf::actor client;
  std::vector<caf::actor> workers;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    client = std::move(client_);
    client_ = caf::actor{};
    for (auto& n : nodes_) {
      workers.push_back(std::move(n.actor));
      n.actor = caf::actor{};
    }
  }
}

} // namespace weave::internal
