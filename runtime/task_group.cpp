#include "runtime/task_group.hpp"

namespace weave {

namespace internal {

bool task_group_state::add(std::function<void()> wait,
                           std::function<bool()> cancel) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (stopped_)
    return false;
  waits_.push_back(std::move(wait));
  cancels_.push_back(std::move(cancel));
  return true;
}

void task_group_state::failed(const caf::error& err) {
  // A task cancelled on its own (its future's cancel()) is not a failure,
  // as in asyncio's TaskGroup.
  if (is(err, errc::cancelled))
    return;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    if (stopped_)
      return; // the group stopped already: its own cancels end here
    first_ = err;
  }
  stop();
}

void task_group_state::stop() {
  std::vector<std::function<bool()>> cancels;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    stopped_ = true;
    cancels = cancels_; // copies: a task may be added and cancelled meanwhile
  }
  for (auto& c : cancels)
    c();
}

void task_group_state::wait_all() {
  // Tasks may add siblings while others are waited for: wait until a pass
  // finds nothing new.
  size_t done = 0;
  for (;;) {
    std::function<void()> next;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      if (done == waits_.size())
        return;
      next = waits_[done];
    }
    next();
    ++done;
  }
}

bool task_group_state::stopped() const {
  std::unique_lock<std::mutex> guard{mtx_};
  return stopped_;
}

caf::error task_group_state::first_error() const {
  std::unique_lock<std::mutex> guard{mtx_};
  return first_;
}

} // namespace internal

task_group::task_group(blocking_pool& pool)
  : pool_(pool), state_(std::make_shared<internal::task_group_state>()) {
  internal::check_may_block("task_group");
}

task_group::~task_group() {
  if (!waited_)
    state_->stop();
  state_->wait_all();
}

void task_group::wait() {
  internal::check_may_block("task_group::wait");
  state_->wait_all();
  waited_ = true;
  if (auto err = state_->first_error())
    raise(std::move(err));
}

} // namespace weave
