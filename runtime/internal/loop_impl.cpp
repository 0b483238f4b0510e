#include "runtime/internal/loop_impl.hpp"

#include <cstdio>

#include "caf/send.hpp"
#include "caf/spawn_options.hpp"

#include "runtime/internal/component.hpp"
#include "runtime/deadline_scope.hpp"
#include "runtime/internal/deadline.hpp"
#include "runtime/internal/loop_task_stop.hpp"
#include "runtime/internal/thread_activity.hpp"
#include "runtime/internal/thread_roles.hpp"
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

void forget_pending(loop_pending& p) noexcept {
  // Only the one completion of `p` reads `loop` (set before the future is
  // handed out): it takes it, so that a completed future, and whatever
  // still holds it (a sleep's or a deadline's timer entry until it is due,
  // the caller's future), no longer keeps the loop's state alive. The
  // list's reference may be the last one to `p`: nothing of `p` is touched
  // after releasing it; `lp` (maybe the last reference to the loop) goes
  // last.
  auto lp = std::move(p.loop);
  if (lp != nullptr && lp->unlink_if_linked(p))
    intrusive_ptr_release(&p.counted());
}

bool adopt_pending(loop_impl& impl, loop_pending& p) {
  return impl.adopt(p);
}

caf::error loop_ended_error(const loop_impl& impl) {
  return make_error(errc::shut_down, "loop '" + impl.name() + "' has ended");
}

loop_impl::loop_impl(std::string name, loop::placement where,
                     std::shared_ptr<deadline_timer> timer)
  : name_(std::move(name)),
    where_(where),
    timer_(std::move(timer)),
    context_(*this) {
  // nop
}

namespace {

/// A sleep's timer entry: at its deadline the timer "drops" it, which sends
/// the sleep's task to the loop. It holds the loop weakly, so a loop that
/// ended is not kept alive by its pending sleeps; the task (and the future
/// state it completes) is released when the entry is, without a lock held.
class wake_job final : public counted_job {
public:
  wake_job(std::weak_ptr<loop_impl> loop, job_ptr task)
    : loop_(std::move(loop)), task_(std::move(task)) {
    // nop
  }

  bool run() noexcept override {
    return true; // never queued on an executor: only the timer drops it
  }

  bool drop(caf::error) noexcept override {
    if (auto lp = loop_.lock())
      lp->dispatch(std::move(task_), nullptr, false);
    return true;
  }

private:
  std::weak_ptr<loop_impl> loop_;
  job_ptr task_;
};

} // namespace

void loop_impl::wake_after(caf::timespan delay, job_ptr task) {
  auto entry = caf::make_counted<wake_job>(weak_from_this(), std::move(task));
  entry->deadline = deadline_after(delay);
  timer_->arm(std::move(entry));
}

void loop_impl::begin_shutdown(shutdown_report&) {
  {
    std::unique_lock<std::mutex> guard{mtx_};
    stopped_by_shutdown_ = !stopped_;
  }
  stop();
}

void loop_impl::finish_shutdown(steady_clock::time_point deadline,
                                shutdown_report& report) {
  std::vector<loop_pending*> abandoned;
  bool ended_in_time;
  size_t failed_at_end = 0;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    ended_in_time = cv_.wait_until(guard, deadline,
                                   [this] { return terminated_; });
    if (ended_in_time && stopped_by_shutdown_)
      failed_at_end = failed_at_end_;
    else if (!ended_in_time) {
      abandoned = take_pending(false);
      abandoned_ = true;
    }
  }
  if (!ended_in_time)
    cv_.notify_all(); // joiners stop waiting for an abandoned loop
  // Still inside a function at the deadline: its callers hear shut_down now
  // (context futures wait for the loop's end: their continuations belong in
  // the loop), and its thread is left to finish on its own.
  auto failed = fail_all(abandoned, "still running at the shutdown deadline, "
                                    "abandoned");
  {
    std::unique_lock<std::mutex> guard{mtx_};
    futures_failed_ += failed;
  }
  report.futures_failed += failed_at_end + failed;
  if (where_ == loop::own_thread)
    ++(ended_in_time ? report.threads_joined : report.threads_abandoned);
}

void loop_impl::start(caf::actor_system& sys) {
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

caf::behavior loop_impl::make_behavior(caf::event_based_actor* self) {
  if (where_ == loop::own_thread) {
    set_this_thread_name(name_);
    set_this_thread_must_not_block(true);
    thread_.store(std::this_thread::get_id(), std::memory_order_release);
    set_thread_role(thread_role::loop);
    if (auto activity = this_thread_activity())
      activity->set_state(thread_state::parked, true);
  }
  context_.self_ = self;
  auto impl = shared_from_this();
  self->attach_functor([impl](const caf::error&) { impl->on_terminated(); });
  return {
    [impl](loop_message& msg) { impl->run_task(msg.task); },
    [self](loop_stop) { self->quit(); },
  };
}

void loop_impl::run_task(job_ptr& task) {
  // Published before it is claimed, for thread dumps (see
  // thread_activity.hpp); on a scheduler thread the slot gives the state.
  auto activity = this_thread_activity();
  if (activity != nullptr)
    activity->begin_job(*task);
  struct end_guard {
    thread_activity* activity;
    ~end_guard() {
      if (activity != nullptr)
        activity->end_job(thread_state::parked);
    }
  } end{activity};
  if (!task->try_start())
    return;
  metrics_.task_starts(task->queued_at);
  context_scope scope{&context_};
  // A task with a deadline runs under it: what it submits inherits it.
  auto at = task->deadline;
  auto outer = at != steady_clock::time_point::max()
                 ? exchange_current_deadline(at)
                 : steady_clock::time_point::max();
  auto ok = task->run();
  if (at != steady_clock::time_point::max())
    exchange_current_deadline(outer);
  task->deliver();
  // Only posted functions keep a failure nobody else sees; submitted ones
  // carry theirs in their future.
  if (!ok && task->failure)
    report_post_failure(task->failure);
}

void loop_impl::report_post_failure(const caf::error& err) {
  post_failures_.fetch_add(1, std::memory_order_relaxed);
  std::shared_ptr<const handler_type> handler;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    handler = handler_;
  }
  if (handler && *handler) {
    try {
      (*handler)(err);
      return;
    } catch (...) {
      std::fprintf(stderr, "weave: loop '%s': the exception handler threw: "
                           "%s\n",
                   name_.c_str(), current_exception_message().c_str());
    }
  }
  std::fprintf(stderr,
               "weave: loop '%s': an exception escaped a posted function: "
               "%s\n",
               name_.c_str(), render(err).c_str());
}

bool loop_impl::dispatch(job_ptr j, loop_pending* pending, bool count) {
  // A posted job's only reference travels in the message: if CAF drops the
  // message under the lock (the actor is gone), the job, a user's function,
  // must not be destroyed there.
  job_ptr keep = pending == nullptr ? j : nullptr;
  if (pending != nullptr)
    pending->loop = shared_from_this();
  std::unique_lock<std::mutex> guard{mtx_};
  if (stopped_) {
    guard.unlock();
    j->cancel_with(make_error(errc::shut_down,
                              "loop '" + name_ + "' is stopped"));
    return false;
  }
  if (pending != nullptr) {
    link(pending);
    submitted_.fetch_add(1, std::memory_order_relaxed);
  } else if (count) {
    posted_.fetch_add(1, std::memory_order_relaxed);
  }
  // A task with a deadline (it takes a token) is watched by the timer,
  // armed after the lock is released.
  job_ptr timed;
  if (j->deadline != steady_clock::time_point::max())
    timed = j;
  j->queued_at = metrics_clock::now();
  // Sending under the lock orders every accepted message before the stop
  // message: work accepted before stop() runs before the loop ends.
  caf::anon_send(actor_, loop_message{std::move(j)});
  guard.unlock();
  if (timed && timer_)
    timer_->arm(caf::make_counted<task_deadline_job>(std::move(timed)));
  return true;
}

bool loop_impl::adopt(loop_pending& p) {
  auto self = shared_from_this();
  std::unique_lock<std::mutex> guard{mtx_};
  if (terminated_ || ended())
    return false;
  p.loop = std::move(self);
  p.loop_bound = true;
  link(&p);
  return true;
}

void loop_impl::link(loop_pending* p) noexcept {
  intrusive_ptr_add_ref(&p->counted());
  p->linked = true;
  p->prev_pending = nullptr;
  p->next_pending = head_;
  if (head_ != nullptr)
    head_->prev_pending = p;
  head_ = p;
}

void loop_impl::unlink(loop_pending* p) noexcept {
  p->linked = false;
  if (p->prev_pending != nullptr)
    p->prev_pending->next_pending = p->next_pending;
  else
    head_ = p->next_pending;
  if (p->next_pending != nullptr)
    p->next_pending->prev_pending = p->prev_pending;
  p->prev_pending = p->next_pending = nullptr;
}

bool loop_impl::unlink_if_linked(loop_pending& p) noexcept {
  std::unique_lock<std::mutex> guard{mtx_};
  if (!p.linked)
    return false;
  unlink(&p);
  return true;
}

std::vector<loop_pending*> loop_impl::take_pending(bool with_loop_bound) {
  // Submitted futures first: their callers hear shut_down even where a
  // context future's continuation, failing next, would have completed them.
  std::vector<loop_pending*> result;
  for (bool bound : {false, true}) {
    if (bound && !with_loop_bound)
      break;
    for (auto p = head_; p != nullptr;) {
      auto next = p->next_pending;
      if (p->loop_bound == bound) {
        unlink(p);
        result.push_back(p);
      }
      p = next;
    }
  }
  return result;
}

size_t loop_impl::fail_all(std::vector<loop_pending*>& items,
                           const char* why) {
  size_t failed = 0;
  for (auto p : items) {
    auto submitted = !p->loop_bound;
    if (p->fail(make_error(errc::shut_down, "loop '" + name_ + "' " + why))
        && submitted)
      ++failed;
    intrusive_ptr_release(&p->counted());
  }
  items.clear();
  return failed;
}

void loop_impl::stop() {
  std::unique_lock<std::mutex> guard{mtx_};
  if (stopped_)
    return;
  stopped_ = true;
  if (actor_)
    caf::anon_send(actor_, loop_stop{});
}

void loop_impl::on_terminated() {
  std::vector<loop_pending*> pending;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    stopped_ = true;
    ended_.store(true, std::memory_order_release); // the context refuses work
    pending = take_pending(true);
  }
  // Work that never ran (its message was dropped) or that was finishing
  // later: nobody would ever complete it now. Its continuations run here, on
  // the loop's thread, as inside the loop.
  size_t failed;
  {
    context_scope scope{&context_};
    failed = fail_all(pending, "stopped before this finished");
  }
  caf::actor dead;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    futures_failed_ += failed;
    failed_at_end_ = failed;
    terminated_ = true;
    dead.swap(actor_);
  }
  cv_.notify_all();
}

void loop_impl::join() {
  std::unique_lock<std::mutex> guard{mtx_};
  cv_.wait(guard, [this] { return terminated_ || abandoned_; });
}

bool loop_impl::stopped() const {
  std::unique_lock<std::mutex> guard{mtx_};
  return stopped_;
}

caf::actor loop_impl::actor() const {
  std::unique_lock<std::mutex> guard{mtx_};
  return actor_;
}

void loop_impl::set_handler(handler_type h) {
  auto next = std::make_shared<const handler_type>(std::move(h));
  {
    std::unique_lock<std::mutex> guard{mtx_};
    handler_.swap(next);
  }
  // `next` now holds the replaced handler: destroyed here, unlocked.
}

loop::stats_type loop_impl::stats() const {
  loop::stats_type s;
  s.submitted = submitted_.load();
  s.posted = posted_.load();
  s.post_failures = post_failures_.load();
  std::unique_lock<std::mutex> guard{mtx_};
  s.futures_failed = futures_failed_;
  return s;
}

bool loop_impl::on_own_thread() const noexcept {
  return where_ == loop::own_thread
         && thread_.load(std::memory_order_acquire)
              == std::this_thread::get_id();
}

bool loop_impl::in_own_task() const noexcept {
  return current_loop_context() == &context_;
}

} // namespace internal

} // namespace weave
