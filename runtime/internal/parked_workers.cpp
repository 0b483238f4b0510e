#include "runtime/internal/parked_workers.hpp"

namespace weave::internal {

void parked_workers::push(size_t id) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (pos_.size() <= id) {
    pos_.resize(id + 1, none);
    token_.resize(id + 1, 0);
  }
  pos_[id] = stack_.size();
  token_[id] = 0;
  stack_.push_back(id);
  count_.fetch_add(1);
}

size_t parked_workers::pop(bool token) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (stack_.empty())
    return none;
  auto id = stack_.back();
  stack_.pop_back();
  pos_[id] = none;
  token_[id] = token ? 1 : 0;
  count_.fetch_sub(1);
  return id;
}

parked_workers::removal parked_workers::remove(size_t id) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (id >= pos_.size() || pos_[id] == none)
    return {false, id < token_.size() && token_[id] != 0};
  // Swap-remove: O(1); the order of the others only guides who wakes first.
  auto at = pos_[id];
  auto last = stack_.back();
  stack_[at] = last;
  pos_[last] = at;
  stack_.pop_back();
  pos_[id] = none;
  count_.fetch_sub(1);
  return {true, false};
}

} // namespace weave::internal
