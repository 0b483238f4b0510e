#include "runtime/internal/job_queue.hpp"

#include <algorithm>
#include <thread>

#include "runtime/future.hpp"
#include "runtime/internal/thread_activity.hpp"

namespace weave::internal {

namespace {

/// Numbers submitting threads in the order they first push (any queue).
std::atomic<size_t> next_submitter{0};

/// The calling thread's number as a submitter, or `npos` before its first
/// push.
constexpr size_t npos = static_cast<size_t>(-1);
thread_local size_t tl_submitter = npos;

/// Where the calling worker starts its next scan (any queue: only a hint).
thread_local size_t tl_cursor = 0;

size_t submitter_index() noexcept {
  if (tl_submitter == npos)
    tl_submitter = next_submitter.fetch_add(1, std::memory_order_relaxed);
  return tl_submitter;
}

} // namespace

size_t job_queue::machine_cores() noexcept {
  return std::max(1u, std::thread::hardware_concurrency());
}

job_queue::job_queue(size_t workers, size_t cores)
  : count_(std::max<size_t>(1, std::min({workers, cores, max_shards}))),
    shards_(new shard[count_]) {
  // nop
}

job_queue::~job_queue() {
  // Nobody else can reach the queue now; released without the locks.
  for (size_t i = 0; i < count_; ++i) {
    auto& s = shards_[i];
    while (s.head != nullptr) {
      auto raw = s.head;
      s.head = raw->next;
      raw->next = nullptr;
      intrusive_ptr_release(raw);
    }
  }
}

bool job_queue::push(job_ptr j, bool& want_worker, uint64_t key) {
  size_t index = 0;
  if (count_ > 1)
    index = (key != no_key ? key : submitter_index()) % count_;
  auto& s = shards_[index];
  size_t n;
  {
    std::unique_lock<std::mutex> guard{s.mtx};
    // Checked under the shard's lock: close() sets the flag before it
    // drains each shard under that shard's lock, so a job is either refused
    // here or drained there.
    if (closed_.load(std::memory_order_seq_cst))
      return false;
    auto raw = j.release();
    raw->next = nullptr;
    if (s.tail == nullptr)
      s.head = s.tail = raw;
    else
      s.tail = s.tail->next = raw;
    s.size.store(s.size.load(std::memory_order_relaxed) + 1,
                 std::memory_order_release);
    // Counted after linking and before unlocking: a worker that sees the
    // count finds the job, and no take can uncount it first.
    n = size_.fetch_add(1, std::memory_order_seq_cst) + 1;
  }
  // A worker stops counting as idle before it uncounts the job it takes
  // (see try_take): either this load sees it still idle, and then `n`
  // still counts its job, or it sees it busy.
  want_worker = n > idle_.load(std::memory_order_seq_cst);
  if (parked_.load(std::memory_order_seq_cst) > 0
      && spinners_.load(std::memory_order_relaxed) == 0)
    wake_one();
  return true;
}

void job_queue::wake_one() {
  // Taking the mutex orders the notify after a parking worker's check.
  { std::unique_lock<std::mutex> guard{park_mtx_}; }
  cv_.notify_one();
}

job_ptr job_queue::take_locked(shard& s) {
  auto raw = s.head;
  s.head = raw->next;
  if (s.head == nullptr)
    s.tail = nullptr;
  raw->next = nullptr;
  s.size.store(s.size.load(std::memory_order_relaxed) - 1,
               std::memory_order_relaxed);
  size_.fetch_sub(1, std::memory_order_seq_cst);
  return job_ptr{raw, false};
}

job_ptr job_queue::try_take(std::atomic<job*>& slot) {
  auto start = tl_cursor;
  for (size_t k = 0; k < count_; ++k) {
    auto i = (start + k) % count_;
    auto& s = shards_[i];
    if (s.size.load(std::memory_order_acquire) == 0)
      continue;
    std::unique_lock<std::mutex> guard{s.mtx};
    if (s.head == nullptr)
      continue;
    // The next scan starts at the next shard: every submitter gets a turn.
    tl_cursor = i + 1;
    // No longer idle from before the job leaves the count, so that a push
    // racing this take never counts this worker as idle for its job.
    idle_.fetch_sub(1, std::memory_order_seq_cst);
    auto result = take_locked(s);
    intrusive_ptr_add_ref(result.get());
    slot.store(result.get(), std::memory_order_release);
    return result;
  }
  return nullptr;
}

bool job_queue::spin(bool may_spin) {
  if (!may_spin)
    return false;
  // Only one worker spins at a time.
  if (spinners_.fetch_add(1, std::memory_order_acq_rel) == 0) {
    auto budget = spin_duration();
    auto start = steady_clock::now();
    while (size_.load(std::memory_order_acquire) == 0
           && !closed_.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 32; ++i)
        cpu_relax();
      if (steady_clock::now() - start > budget)
        break;
    }
  }
  spinners_.fetch_sub(1, std::memory_order_acq_rel);
  return true;
}

job_ptr job_queue::pop(bool may_spin, std::atomic<job*>& slot) {
  idle_.fetch_add(1, std::memory_order_relaxed);
  job_ptr result;
  while ((result = try_take(slot)) == nullptr
         && !closed_.load(std::memory_order_acquire)) {
    // Tier 1, once per pop: spin on the count, without a lock.
    if (spin(may_spin)) {
      may_spin = false;
      continue;
    }
    // Tier 2: park until a job is counted (or the queue closes).
    auto activity = this_thread_activity(); // for thread dumps
    if (activity != nullptr)
      activity->set_state(thread_state::parked, true);
    {
      std::unique_lock<std::mutex> guard{park_mtx_};
      parked_.fetch_add(1, std::memory_order_seq_cst);
      while (size_.load(std::memory_order_seq_cst) == 0
             && !closed_.load(std::memory_order_seq_cst))
        cv_.wait(guard);
      parked_.fetch_sub(1, std::memory_order_relaxed);
    }
    if (activity != nullptr)
      activity->set_state(thread_state::spinning, false);
  }
  // A worker that took a job stopped counting as idle in try_take.
  if (!result)
    idle_.fetch_sub(1, std::memory_order_relaxed);
  // A spinner may have absorbed the wake-up meant for another job.
  if (result && size_.load(std::memory_order_seq_cst) > 0
      && parked_.load(std::memory_order_seq_cst) > 0)
    wake_one();
  return result;
}

std::vector<job_ptr> job_queue::drain() {
  std::vector<job_ptr> rest;
  for (size_t i = 0; i < count_; ++i) {
    auto& s = shards_[i];
    std::unique_lock<std::mutex> guard{s.mtx};
    while (s.head != nullptr)
      rest.emplace_back(take_locked(s));
  }
  return rest;
}

std::vector<job_ptr> job_queue::close() {
  std::vector<job_ptr> rest;
  closed_.store(true, std::memory_order_seq_cst);
  for (size_t i = 0; i < count_; ++i) {
    auto& s = shards_[i];
    std::unique_lock<std::mutex> guard{s.mtx};
    while (s.head != nullptr)
      rest.emplace_back(take_locked(s));
  }
  {
    std::unique_lock<std::mutex> guard{park_mtx_};
  }
  cv_.notify_all();
  return rest;
}

} // namespace weave::internal
