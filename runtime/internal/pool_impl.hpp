#pragma once

// Internal: the shared part of a blocking_pool, kept alive by its workers.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "caf/fwd.hpp"

#include "runtime/blocking_pool.hpp"
#include "runtime/internal/component.hpp"
#include "runtime/internal/job_queue.hpp"

namespace weave::internal {

class pool_impl : public component,
                  public self_wait_guard,
                  public job_owner,
                  public std::enable_shared_from_this<pool_impl> {
public:
  pool_impl(caf::actor_system& sys, size_t max_workers, std::string name);

  shutdown_phase phase() const noexcept override {
    return shutdown_phase::pools;
  }

  void begin_shutdown(shutdown_report& report) override;

  void finish_shutdown(steady_clock::time_point deadline,
                       shutdown_report& report) override;

  void enqueue(job_ptr j);

  blocking_pool::stats_type stats() const;

  bool begin_wait(const job& awaited) override;

  void end_wait() noexcept override;

  const std::string& name() const noexcept {
    return name_;
  }

  size_t max_workers() const noexcept {
    return max_workers_;
  }

private:
  void maybe_spawn_worker();

  void worker_main(size_t index);

  caf::actor_system& sys_;
  const size_t max_workers_;
  const std::string name_;
  // Workers spin before parking only while a core is free for it.
  const size_t cores_;
  job_queue queue_;
  std::atomic<size_t> spawned_{0};
  std::atomic<size_t> busy_{0};
  std::atomic<size_t> completed_{0};
  std::atomic<size_t> failed_{0};
  // Workers waiting for jobs queued in this pool (see self_wait_guard).
  std::atomic<size_t> self_waiters_{0};
  // The job each worker is running, so that shutdown can abandon it at the
  // deadline: whoever takes it out of the slot (the worker when it returns,
  // or shutdown) decides how it ends.
  std::unique_ptr<std::atomic<job*>[]> running_;
  // Live workers; shutdown waits for this to reach zero.
  std::mutex live_mtx_;
  std::condition_variable live_cv_;
  size_t live_ = 0;
  bool finished_ = false;
};

} // namespace weave::internal
