// an event loop in its own thread, fed from the main thread: the C++
// twin of new_event_loop() + Thread(run_forever) + run_coroutine_threadsafe.
// The submitted task prints its thread, waits two seconds asynchronously
// (the loop stays free), prints again. Main keeps working meanwhile, then
// waits on the future (no sleep-and-hope) and stops the loop cleanly.
#include "examples/example.hpp"

namespace weave_examples {

void section_4_1(weave::runtime& rt, const options& opts) {
  section("4.1", "an event loop in its own thread, fed from main");
  weave::loop new_loop{rt, "Thread-1"}; // the loop's own thread
  auto task = new_loop.submit([opts](weave::loop_context& cx) {
    say("async task starts");
    return cx.sleep(opts.scaled(std::chrono::seconds{2}))
      .then([](weave::result<void>) { say("async task done"); });
  });
  say("main thread keeps running");
  // The loop is not blocked by the sleeping task: it answers at once.
  auto pong = new_loop.submit([] { return weave::this_thread_name(); });
  say("meanwhile the loop answered from ", pong.get());
  task.get(); // wait for the task itself, not for a guessed time
  new_loop.stop();
  new_loop.join();
  say("loop stopped and joined");
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::section_4_1)
