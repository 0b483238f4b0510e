// Hostile review of the sharded pool queue, loops, runtime::from and
// channels: each case pins down a promise the code must keep under a
// specific interleaving. Tagged tsan_clean (queue-level cases go through no
// CAF code).
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "runtime/internal/job_queue.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;

namespace {

/// A job whose next reference taken after `arm()` pauses the taking thread
/// (a worker inside job_queue::pop, between taking the job off its shard and
/// publishing it in its slot) until `release()`.
class pausing_job final : public weave::internal::job {
public:
  bool run() noexcept override {
    mark_finished();
    return true;
  }

  bool drop(caf::error) noexcept override {
    return true;
  }

  void arm() noexcept {
    armed_ = true;
  }

  void release() noexcept {
    go_.count_down();
  }

  /// Waits until a thread is paused inside the reference count.
  bool wait_paused() {
    return paused_.wait();
  }

protected:
  void ref_job() const noexcept override {
    if (armed_.exchange(false)) {
      paused_.count_down();
      go_.wait(weave::test::patience);
    }
    rc_.fetch_add(1);
  }

  void deref_job() const noexcept override {
    if (rc_.fetch_sub(1) == 1)
      delete this;
  }

private:
  mutable std::atomic<int> rc_{1};
  mutable std::atomic<bool> armed_{false};
  mutable weave::test::latch paused_{1};
  mutable weave::test::latch go_{1};
};

weave::internal::job_ptr make_pausing(pausing_job*& raw) {
  raw = new pausing_job;
  return weave::internal::job_ptr{raw, false};
}

} // namespace

TEST_CASE("a job queued while the only idle worker takes another asks for a "
          "worker") {
  // Many shards, so that the second job goes to another shard than the one
  // the worker holds locked while it takes the first.
  weave::internal::job_queue q{16, 16};
  std::atomic<weave::internal::job*> slot{nullptr};
  weave::test::latch worker_done{1};
  weave::internal::job_ptr taken;
  // The worker is idle (inside pop) before anything is queued.
  std::thread worker{[&] {
    taken = q.pop(false, slot);
    worker_done.count_down();
  }};
  pausing_job* x_raw = nullptr;
  auto x = make_pausing(x_raw);
  x_raw->arm();
  bool want_x = false;
  // Pushed from a thread of its own, so that its shard differs from the
  // next pusher's.
  bool pushed_x = false;
  std::thread{[&] { pushed_x = q.push(std::move(x), want_x); }}.join();
  REQUIRE(pushed_x);
  // The worker has taken x off the queue (x no longer counts as queued) and
  // is paused before it leaves pop().
  REQUIRE(x_raw->wait_paused());
  CHECK(q.size() == 0);
  pausing_job* y_raw = nullptr;
  auto y = make_pausing(y_raw);
  bool want_y = false;
  std::thread pusher{[&] { q.push(std::move(y), want_y); }};
  pusher.join();
  x_raw->release();
  REQUIRE(worker_done.wait());
  worker.join();
  CHECK(taken.get() == x_raw);
  // One job queued (y), no worker left idle to take it (the only one is
  // about to run x): the pool must grow, or y waits behind x however long
  // x runs.
  CHECK(q.size() == 1);
  CHECK(want_y);
  if (auto held = slot.exchange(nullptr))
    intrusive_ptr_release(held);
  for (auto& j : q.close())
    j->cancel_with(caf::error{});
}
