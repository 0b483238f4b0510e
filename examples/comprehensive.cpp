// the comprehensive example, done right: an event loop on its own
// thread runs a consumer; a blocking pool of 3 runs three 2-second I/O jobs
// that push "result i" into a channel; the consumer prints each and finishes
// after the last one. The program ends as soon as the work is done (no
// sleep(5)), and shuts down cleanly.
#include <thread>
#include <vector>

#include "examples/example.hpp"

namespace weave_examples {

void section_7_1(weave::runtime& rt, const options& opts) {
  section("7.1", "a loop thread, a pool of 3 and a channel, together");
  constexpr int tasks = 3;
  constexpr size_t capacity = 8;
  weave::loop lp{rt, "Thread-loop"};
  weave::channel<std::string> q{rt, capacity};
  auto consumer = lp.submit([&q](weave::loop_context& cx) {
    return q.consume(cx, [](std::string& result) {
      say("consumer received: ", result);
    });
  });
  weave::blocking_pool executor{rt, tasks, "ThreadPoolExecutor-0"};
  std::vector<weave::future<void>> jobs;
  for (int i = 0; i < tasks; ++i)
    jobs.push_back(executor.submit([&q, i, opts] {
      say("start blocking I/O task ", i);
      std::this_thread::sleep_for(opts.scaled(std::chrono::seconds{2}));
      q.put("result " + std::to_string(i));
      say("finished blocking I/O task ", i);
    }));
  for (auto& j : jobs)
    j.get(); // wait for the work itself
  q.close();
  auto n = consumer.get();
  say("consumer finished after ", n, " results");
  lp.stop();
  lp.join();
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::section_7_1)
