#include "runtime/deadline_scope.hpp"

#include <vector>

namespace weave {

namespace {

using time_point = std::chrono::steady_clock::time_point;

/// One live scope of the calling thread.
struct scope_entry {
  uint64_t id;
  time_point at;
};

/// The calling thread's deadlines (see deadline_scope.hpp). `current` is
/// the minimum of `base` and every scope's, kept up to date on each change.
struct thread_deadlines {
  time_point base = time_point::max();
  time_point current = time_point::max();
  std::vector<scope_entry> scopes;
  uint64_t next_id = 0;

  void recompute() noexcept {
    current = base;
    for (auto& e : scopes)
      current = std::min(current, e.at);
  }
};

thread_local thread_deadlines tl;

} // namespace

time_point current_deadline() noexcept {
  return tl.current;
}

namespace internal {

time_point exchange_current_deadline(time_point at) noexcept {
  auto old = tl.base;
  tl.base = at;
  tl.recompute();
  return old;
}

void reset_thread_deadline() noexcept {
  if (tl.current == time_point::max() && tl.scopes.empty())
    return;
  tl.base = time_point::max();
  tl.scopes.clear();
  tl.current = time_point::max();
}

uint64_t push_scope(time_point at) {
  auto id = ++tl.next_id;
  tl.scopes.push_back(scope_entry{id, at});
  tl.current = std::min(tl.current, at);
  return id;
}

void pop_scope(uint64_t id) noexcept {
  // Usually the last one (scopes end in reverse order).
  for (auto i = tl.scopes.size(); i > 0; --i) {
    if (tl.scopes[i - 1].id == id) {
      tl.scopes.erase(tl.scopes.begin() + static_cast<std::ptrdiff_t>(i - 1));
      tl.recompute();
      return;
    }
  }
}

} // namespace internal

deadline_scope::~deadline_scope() {
  internal::pop_scope(id_);
}

} // namespace weave
