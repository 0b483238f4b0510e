#include "runtime/internal/job_queue.hpp"

#include "runtime/future.hpp"

namespace weave::internal {

bool job_queue::push(job_ptr j, bool& want_worker) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (closed_.load(std::memory_order_relaxed))
    return false;
  auto raw = j.release();
  raw->next = nullptr;
  if (tail_ == nullptr)
    head_ = tail_ = raw;
  else
    tail_ = tail_->next = raw;
  auto n = size_.fetch_add(1, std::memory_order_release) + 1;
  want_worker = n > idle_.load(std::memory_order_relaxed);
  if (parked_ > 0 && spinners_.load(std::memory_order_relaxed) == 0)
    cv_.notify_one();
  return true;
}

job_ptr job_queue::take_locked() {
  auto raw = head_;
  head_ = raw->next;
  if (head_ == nullptr)
    tail_ = nullptr;
  raw->next = nullptr;
  size_.fetch_sub(1, std::memory_order_relaxed);
  return job_ptr{raw, false};
}

job_ptr job_queue::pop(bool may_spin, std::atomic<job*>& slot) {
  idle_.fetch_add(1, std::memory_order_relaxed);
  // Tier 1: one worker spins on the size counter, without the lock.
  if (spinners_.fetch_add(1, std::memory_order_acq_rel) == 0 && may_spin) {
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
  // Tier 2: take a job or park.
  std::unique_lock<std::mutex> guard{mtx_};
  while (head_ == nullptr && !closed_.load(std::memory_order_relaxed)) {
    ++parked_;
    cv_.wait(guard);
    --parked_;
  }
  idle_.fetch_sub(1, std::memory_order_relaxed);
  if (head_ == nullptr)
    return nullptr; // closed
  auto result = take_locked();
  intrusive_ptr_add_ref(result.get());
  slot.store(result.get(), std::memory_order_release);
  // A spinner may have absorbed the wake-up meant for this job's successor.
  if (head_ != nullptr && parked_ > 0)
    cv_.notify_one();
  return result;
}

job_queue::~job_queue() {
  // Nobody else can reach the queue now; released without the lock.
  while (head_ != nullptr) {
    auto raw = head_;
    head_ = raw->next;
    raw->next = nullptr;
    intrusive_ptr_release(raw);
  }
}

std::vector<job_ptr> job_queue::close() {
  std::vector<job_ptr> rest;
  {
    std::unique_lock<std::mutex> guard{mtx_};
    closed_.store(true, std::memory_order_release);
    while (head_ != nullptr)
      rest.emplace_back(take_locked());
  }
  cv_.notify_all();
  return rest;
}

std::vector<job_ptr> job_queue::drain() {
  std::vector<job_ptr> rest;
  std::unique_lock<std::mutex> guard{mtx_};
  rest.reserve(size_.load(std::memory_order_relaxed));
  while (head_ != nullptr)
    rest.emplace_back(take_locked());
  return rest;
}

} // namespace weave::internal
