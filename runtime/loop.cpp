#include "runtime/loop.hpp"

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "caf/actor_system.hpp"
#include "caf/send.hpp"
#include "caf/spawn_options.hpp"

#include "runtime/internal/component.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/runtime.hpp"
#include "runtime/this_thread.hpp"

namespace weave {

namespace internal {

namespace {

thread_local loop_context* tl_context = nullptr;

/// Sets the calling thread's loop context for the duration of a task.
class context_scope {
public:
  explicit context_scope(loop_context* cx) : prev_(tl_context) {
    tl_context = cx;
  }
  ~context_scope() {
    tl_context = prev_;
  }

private:
  loop_context* prev_;
};

struct loop_stop {};

} // namespace

loop_context* current_loop_context() noexcept {
  return tl_context;
}

class loop_impl : public component,
                  public std::enable_shared_from_this<loop_impl> {
public:
  loop_impl(std::string name, loop::placement where)
    : name_(std::move(name)), where_(where) {
    // nop
  }

  shutdown_phase phase() const noexcept override {
    return shutdown_phase::loops;
  }

  void begin_shutdown(shutdown_report&) override {
    stop();
  }

  void finish_shutdown(steady_clock::time_point deadline,
                       shutdown_report& report) override {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait_until(guard, deadline, [this] { return terminated_; });
    report.futures_failed += futures_failed_;
    if (terminated_ && where_ == loop::own_thread)
      ++report.threads_joined;
  }

  void start(caf::actor_system& sys) {
    auto self = shared_from_this();
    auto fun = [self](caf::event_based_actor* ptr) -> caf::behavior {
      return self->make_behavior(ptr);
    };
    std::unique_lock<std::mutex> guard{mtx_};
    if (where_ == loop::own_thread)
      actor_ = sys.spawn<caf::detached + caf::hidden>(fun);
    else
      actor_ = sys.spawn<caf::hidden>(fun);
  }

  caf::behavior make_behavior(caf::event_based_actor* self) {
    if (where_ == loop::own_thread) {
      set_this_thread_name(name_);
      set_this_thread_must_not_block(true);
      thread_.store(std::this_thread::get_id(), std::memory_order_release);
    }
    context_ = std::make_unique<loop_context>(self, this);
    auto impl = shared_from_this();
    self->attach_functor([impl](const caf::error&) { impl->on_terminated(); });
    return {
      [impl](loop_message& msg) { impl->run_task(msg.task); },
      [self](loop_stop) { self->quit(); },
    };
  }

  void run_task(job_ptr& task) {
    if (!task->try_start())
      return;
    context_scope scope{context_.get()};
    auto ok = task->run();
    task->deliver();
    if (!ok && task->failure) {
      // Only posted functions get here with a failure nobody else sees;
      // submitted ones carry theirs in their future.
      if (dynamic_cast<loop_task*>(task.get()) == nullptr)
        report_post_failure(task->failure);
    }
  }

  void report_post_failure(const caf::error& err) {
    post_failures_.fetch_add(1, std::memory_order_relaxed);
    std::function<void(const caf::error&)> handler;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      handler = handler_;
    }
    if (handler)
      handler(err);
    else
      std::fprintf(stderr,
                   "weave: loop '%s': an exception escaped a posted "
                   "function: %s\n",
                   name_.c_str(), render(err).c_str());
  }

  bool dispatch(job_ptr j, loop_task* task) {
    if (task != nullptr) {
      // Registered before linking, outside the lock: the future cannot
      // complete yet, nobody else has it.
      std::weak_ptr<loop_impl> weak = shared_from_this();
      task->on_done(callback{[weak, task] {
        if (auto impl = weak.lock())
          impl->forget(task);
      }});
    }
    std::unique_lock<std::mutex> guard{mtx_};
    if (stopped_) {
      guard.unlock();
      j->cancel_with(make_error(errc::shut_down,
                                "loop '" + name_ + "' is stopped"));
      return false;
    }
    if (task != nullptr) {
      link(task);
      submitted_.fetch_add(1, std::memory_order_relaxed);
    } else {
      posted_.fetch_add(1, std::memory_order_relaxed);
    }
    // Sending under the lock orders every accepted message before the stop
    // message: work accepted before stop() runs before the loop ends.
    caf::anon_send(actor_, loop_message{std::move(j)});
    return true;
  }

  void link(loop_task* t) {
    intrusive_ptr_add_ref(&t->as_job());
    t->linked = true;
    t->prev_pending = nullptr;
    t->next_pending = head_;
    if (head_ != nullptr)
      head_->prev_pending = t;
    head_ = t;
  }

  /// Unlinks `t` once its future completed; called from its callback.
  void forget(loop_task* t) {
    {
      std::unique_lock<std::mutex> guard{mtx_};
      if (!t->linked)
        return;
      unlink(t);
    }
    intrusive_ptr_release(&t->as_job());
  }

  void unlink(loop_task* t) {
    t->linked = false;
    if (t->prev_pending != nullptr)
      t->prev_pending->next_pending = t->next_pending;
    else
      head_ = t->next_pending;
    if (t->next_pending != nullptr)
      t->next_pending->prev_pending = t->prev_pending;
    t->prev_pending = t->next_pending = nullptr;
  }

  void stop() {
    std::unique_lock<std::mutex> guard{mtx_};
    if (stopped_)
      return;
    stopped_ = true;
    if (actor_)
      caf::anon_send(actor_, loop_stop{});
  }

  void on_terminated() {
    std::vector<loop_task*> pending;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      stopped_ = true;
      while (head_ != nullptr) {
        auto t = head_;
        unlink(t);
        pending.push_back(t);
      }
    }
    // Fail outside the lock: completion callbacks may call back into us.
    size_t failed = 0;
    for (auto t : pending) {
      // Never ran (its message was dropped) or started and finishing later:
      // either way nobody would ever complete it now.
      if (t->fail(make_error(errc::shut_down, "loop '" + name_
                                                + "' stopped before this "
                                                  "finished")))
        ++failed;
      intrusive_ptr_release(&t->as_job());
    }
    context_.reset();
    std::unique_lock<std::mutex> guard{mtx_};
    futures_failed_ += failed;
    terminated_ = true;
    actor_ = nullptr;
    cv_.notify_all();
  }

  void join() {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait(guard, [this] { return terminated_; });
  }

  bool stopped() const {
    std::unique_lock<std::mutex> guard{mtx_};
    return stopped_;
  }

  caf::actor actor() const {
    std::unique_lock<std::mutex> guard{mtx_};
    return actor_;
  }

  const std::string& name() const noexcept {
    return name_;
  }

  void set_handler(std::function<void(const caf::error&)> h) {
    std::unique_lock<std::mutex> guard{mtx_};
    handler_ = std::move(h);
  }

  loop::stats_type stats() const {
    loop::stats_type s;
    s.submitted = submitted_.load();
    s.posted = posted_.load();
    s.post_failures = post_failures_.load();
    std::unique_lock<std::mutex> guard{mtx_};
    s.futures_failed = futures_failed_;
    return s;
  }

  bool on_own_thread() const noexcept {
    return where_ == loop::own_thread
           && thread_.load(std::memory_order_acquire)
                == std::this_thread::get_id();
  }

private:
  const std::string name_;
  const loop::placement where_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  caf::actor actor_;
  bool stopped_ = false;
  bool terminated_ = false;
  loop_task* head_ = nullptr;
  std::unique_ptr<loop_context> context_;
  // The loop's own thread (own_thread placement), for join()'s check.
  std::atomic<std::thread::id> thread_{};
  std::function<void(const caf::error&)> handler_;
  std::atomic<size_t> submitted_{0};
  std::atomic<size_t> posted_{0};
  std::atomic<size_t> post_failures_{0};
  size_t futures_failed_ = 0;
};

} // namespace internal

const std::string& loop_context::name() const noexcept {
  return impl_->name();
}

future<void> loop_context::sleep(caf::timespan delay) {
  promise<void> p;
  auto f = p.get_future();
  if (delay < caf::timespan{0}) {
    p.set_error(make_error(errc::invalid_argument,
                           "loop_context::sleep: negative delay"));
    return f;
  }
  auto fire = [p]() mutable { p.set_value(); };
  auto j = caf::make_counted<internal::post_job<decltype(fire)>>(std::move(fire));
  self_->delayed_send(self_, delay, internal::loop_message{std::move(j)});
  return f;
}

loop::loop(runtime& rt, std::string name, placement where)
  : impl_(std::make_shared<internal::loop_impl>(std::move(name), where)) {
  if (rt.shutting_down())
    raise(make_error(errc::shut_down, "the runtime is shut down"));
  internal::runtime_access::start_component(rt, impl_, [this](caf::actor_system& sys) { impl_->start(sys); });
}

loop::~loop() {
  stop();
  // On the loop's own thread, waiting for the loop would wait for ourselves:
  // the loop ends right after the current function returns.
  if (!impl_->on_own_thread())
    impl_->join();
}

bool loop::dispatch(internal::job_ptr j, internal::loop_task* task) {
  return impl_->dispatch(std::move(j), task);
}

void loop::stop() {
  impl_->stop();
}

void loop::join() {
  if (impl_->on_own_thread())
    raise(make_error(errc::would_deadlock,
                     "loop::join called on the loop's own thread"));
  impl_->join();
}

bool loop::stopped() const noexcept {
  return impl_->stopped();
}

caf::actor loop::actor() const {
  return impl_->actor();
}

const std::string& loop::name() const noexcept {
  return impl_->name();
}

void loop::set_exception_handler(
  std::function<void(const caf::error&)> handler) {
  impl_->set_handler(std::move(handler));
}

loop::stats_type loop::stats() const {
  return impl_->stats();
}

} // namespace weave
