// a custom pool: ThreadPoolExecutor(max_workers=5). Ten blocking jobs
// are offloaded to a pool of five; at most five run at once, the other five
// wait in the pool's queue and start as soon as a worker frees up.
#include <atomic>
#include <thread>

#include "examples/example.hpp"

namespace weave_examples {

void section_3_2(weave::runtime& rt, const options& opts) {
  section("3.2", "a custom pool: 10 blocking jobs on max_workers=5");
  constexpr int pool_size = 5;
  constexpr int jobs = 10;
  weave::blocking_pool executor{rt, pool_size, "executor"};
  auto running = std::make_shared<std::atomic<int>>(0);
  auto peak = std::make_shared<std::atomic<int>>(0);
  weave::promise<void> finished;
  rt.system().spawn([=, &executor](caf::event_based_actor* self) mutable {
    auto remaining = std::make_shared<int>(jobs);
    for (int i = 0; i < jobs; ++i) {
      weave::offload(self, executor, [=] {
        auto now = ++*running;
        auto seen = peak->load();
        while (now > seen && !peak->compare_exchange_weak(seen, now)) {
        }
        say("job ", i, " starts (", now, " running)");
        std::this_thread::sleep_for(opts.scaled(std::chrono::seconds{1}));
        --*running;
        return i;
      }).then([=](int done) mutable {
        say("job ", done, " finished");
        if (--*remaining == 0) {
          finished.set_value();
          self->quit();
        }
      });
    }
  });
  finished.get_future().get();
  say("all ", jobs, " jobs done; peak concurrency: ", peak->load(),
      " (max_workers=", pool_size, ")",
      peak->load() <= pool_size ? " within the limit" : " OVER THE LIMIT");
  auto s = executor.stats();
  say("pool stats: workers=", s.workers, " completed=", s.completed,
      " failed=", s.failed);
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::section_3_2)
