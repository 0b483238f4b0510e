// The worker processes of a process_pool: starting, joining, losing,
// stopping (see process_pool_impl.hpp).

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>
#include <cstring>

#include "caf/io/middleman.hpp"
#include "caf/send.hpp"

#include "runtime/internal/process_pool_batch.hpp"
#include "runtime/internal/process_pool_impl.hpp"
#include "runtime/internal/remote_protocol.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/this_thread.hpp"

extern char** environ;

namespace weave::internal {

namespace {

std::string describe_exit(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED)
    return "exited with status " + std::to_string(info.si_status);
  return "killed by signal " + std::to_string(info.si_status) + " ("
         + sigabbrev_np(info.si_status) + ")";
}

/// How long a shutdown waits for the client actor's thread to end.
constexpr auto client_patience = std::chrono::milliseconds{100};

/// Highest file descriptor a child closes when close_range is missing.
constexpr int fallback_max_fd = 4096;

} // namespace

pid_t process_pool_impl::spawn_worker(size_t index, uint32_t gen,
                                      std::string& error) {
  // Everything the child needs is prepared before fork: between fork and
  // exec it may only make async-signal-safe calls.
  std::vector<std::string> args{program_,
                                worker_flag,
                                "127.0.0.1",
                                std::to_string(port_),
                                std::to_string(index),
                                std::to_string(gen),
                                std::to_string(opts_.threads_per_worker)};
  std::vector<char*> argv;
  for (auto& x : args)
    argv.push_back(x.data());
  argv.push_back(nullptr);
  std::string marker = std::string{worker_env} + "=1";
  // The worker heartbeats as often as the pool expects (a worker on the
  // defaults would miss a shorter connection timeout of the pool's).
  auto interval = caf::get_or(sys_->config(), "middleman.heartbeat-interval",
                              caf::timespan{0});
  std::string heartbeat = std::string{worker_heartbeat_env} + "="
                          + std::to_string(interval.count());
  std::vector<char*> envp;
  auto ours = [](const char* e, const char* name) {
    auto n = std::strlen(name);
    return std::strncmp(e, name, n) == 0 && e[n] == '=';
  };
  for (char** e = environ; *e != nullptr; ++e)
    if (!ours(*e, worker_env) && !ours(*e, worker_heartbeat_env))
      envp.push_back(*e);
  envp.push_back(marker.data());
  envp.push_back(heartbeat.data());
  envp.push_back(nullptr);
  auto parent = ::getpid();
  auto pid = ::fork();
  if (pid < 0) {
    error = std::string{"fork failed: "} + std::strerror(errno);
    return -1;
  }
  if (pid == 0) {
    // Dies with the slot thread that started it (which outlives it).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent)
      ::_exit(1);
    // The pool's sockets are not the worker's to keep open.
    if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
      for (int fd = 3; fd < fallback_max_fd; ++fd)
        ::close(fd);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

void process_pool_impl::slot_main(size_t index) {
  set_this_thread_name(opts_.name + "-w" + std::to_string(index));
  census_thread_started();
  // Workers that keep exiting before they connect are restarted ever more
  // slowly, up to the cap; one that connects resets the delay.
  auto delay = opts_.respawn_backoff;
  for (;;) {
    uint32_t gen = 0;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      if (stopping_)
        break;
      auto& s = slots_[index];
      gen = ++s.generation;
      s.connected = false;
    }
    std::string error;
    auto pid = spawn_worker(index, gen, error);
    if (pid < 0) {
      std::unique_lock<std::mutex> guard{mtx_};
      if (starting_ && !start_error_)
        start_error_ = make_error(errc::io_error, "process_pool: " + error);
      cv_.notify_all();
      if (starting_)
        break;
      back_off(guard, delay);
      continue;
    }
    {
      std::unique_lock<std::mutex> guard{mtx_};
      slots_[index].pid = pid;
      if (stopping_)
        ::kill(pid, SIGKILL);
    }
    // Waits without reaping: until the pid is reaped below, nobody can
    // signal a recycled one.
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT)
             != 0
           && errno == EINTR) {
    }
    auto why = describe_exit(info);
    lose_worker(index, gen, why);
    bool connected = false;
    bool refused = false;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      slots_[index].pid = 0;
      connected = slots_[index].connected;
      refused = slots_[index].refused;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.notify_all();
    if (refused)
      break;
    if (!connected) {
      if (starting_) {
        if (!start_error_)
          start_error_ = make_error(
            errc::invalid_argument,
            "process_pool: worker process " + why
              + " before it connected (does the worker program's main() "
                "start with WEAVE_PROCESS_WORKER_MAIN(argc, argv)?)");
        break;
      }
      back_off(guard, delay);
    } else {
      delay = opts_.respawn_backoff;
    }
  }
  {
    std::unique_lock<std::mutex> guard{mtx_};
    slots_[index].thread_done = true;
  }
  cv_.notify_all();
  census_thread_ended();
}

void process_pool_impl::back_off(std::unique_lock<std::mutex>& guard,
                                 caf::timespan& delay) {
  cv_.wait_for(guard, delay, [this] { return stopping_; });
  auto cap = opts_.max_respawn_backoff;
  delay = delay > cap / 2 ? cap : delay * 2; // saturating: no overflow
}

void process_pool_impl::on_join(const caf::actor& worker, uint32_t slot,
                                uint32_t gen, int32_t pid,
                                const std::vector<std::string>& table) {
  std::vector<outgoing> out;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (slot >= slots_.size() || slots_[slot].generation != gen
        || slots_[slot].pid != pid || stopping_)
      return; // an earlier incarnation, or too late
    auto& s = slots_[slot];
    std::set<std::string> runnable;
    auto err = std::find(table.begin(), table.end(), protocol_line)
                   == table.end()
                 ? make_error(errc::registry_mismatch,
                              "the worker program does not speak this "
                              "process pool's protocol ("
                                + std::string{protocol_version}
                                + "): built with another weave version?")
                 : job_registry::instance().check(table, runnable);
    if (err) {
      s.refused = true;
      if (!start_error_)
        start_error_ = std::move(err);
      ::kill(pid, SIGKILL);
      cv_.notify_all();
      return;
    }
    runnable_ = std::move(runnable);
    s.actor = worker;
    s.joined = true;
    s.connected = true;
    s.lost = false;
    ++joined_;
    dispatch_locked(out);
    cv_.notify_all();
  }
  send_all(out);
}

// -- shutdown -----------------------------------------------------------------

void process_pool_impl::signal_all_locked(int sig) {
  for (auto& s : slots_)
    if (s.pid != 0)
      ::kill(s.pid, sig);
}

bool process_pool_impl::all_reaped_locked() const {
  for (auto& s : slots_)
    if (s.thread.joinable() && !s.thread_done)
      return false;
  return true;
}

void process_pool_impl::begin_shutdown(shutdown_report& report) {
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
    auto err = make_error(errc::shut_down, "the process pool is shut down");
    if (c->started ? c->job->drop(std::move(err))
                   : c->job->cancel_with(std::move(err)))
      ++report.jobs_cancelled;
  }
}

bool process_pool_impl::settle_jobs(steady_clock::time_point deadline,
                                    shutdown_report& report) {
  std::vector<remote_call_ptr> held;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (settled_ != 0) {
      // Another caller (the owner's shutdown and the runtime's) settles:
      // its counts go to its report; this one waits until it is done (at
      // most until its own deadline), so that what follows (stopping the
      // client actor) does not overtake it.
      cv_.wait_until(guard, deadline, [this] { return settled_ == 2; });
      return !finished_;
    }
    settled_ = 1;
    cv_.wait_until(guard, deadline, [this] { return in_flight_ == 0; });
    for (auto& s : slots_)
      for (auto& c : take_calls_locked(s)) {
        c->done = true;
        calls_.erase(c->id);
        held.push_back(c);
      }
    report.jobs_completed += counts_.completed + counts_.failed;
    signal_all_locked(SIGTERM);
    term_sent_ = steady_clock::now();
  }
  for (auto& c : held) {
    auto err = make_error(errc::shut_down, "the process pool is shut down");
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

void process_pool_impl::finish_shutdown(steady_clock::time_point deadline,
                                        shutdown_report& report) {
  if (!settle_jobs(deadline, report))
    return;
  // Nothing left for the client actor to answer: it ends while the
  // workers do.
  stop_client();
  std::vector<std::thread> threads;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (finished_)
      return;
    // The grace counts from the SIGTERM (sent when the jobs settled, for
    // every pool of the phase before any of these waits), not from now:
    // pool after pool, graces that began now would add up.
    auto kill_at = std::max(deadline, term_sent_ + process_pool::term_grace);
    if (!cv_.wait_until(guard, kill_at, [this] { return all_reaped_locked(); }))
      signal_all_locked(SIGKILL);
    for (auto& s : slots_)
      if (s.thread.joinable())
        threads.push_back(std::move(s.thread));
    finished_ = true;
  }
  for (auto& t : threads)
    t.join();
  report.threads_joined += threads.size();
}

void process_pool_impl::stop_client() {
  caf::actor client;
  {
    // Its thread ends only once the actor is destroyed, so the pool lets
    // go of it here (a handle kept until `release_actors` made this wait
    // out its whole patience every time).
    std::unique_lock<std::mutex> guard{mtx_};
    client = std::move(client_);
    client_ = caf::actor{};
  }
  if (!client)
    return;
  auto before = sys_->detached_actors();
  if (!this_thread_must_not_block())
    (void) sys_->middleman().unpublish(client, port_);
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

void process_pool_impl::release_actors() noexcept {
  caf::actor client;
  std::vector<caf::actor> workers;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    client = std::move(client_);
    client_ = caf::actor{};
    for (auto& s : slots_) {
      workers.push_back(std::move(s.actor));
      s.actor = caf::actor{};
    }
  }
}

} // namespace weave::internal
