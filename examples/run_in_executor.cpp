// run_in_executor: an event-based actor offloads a blocking call to the
// runtime's default pool. The scheduler thread is never blocked; the result
// comes back to the actor as a message, on a scheduler thread.
#include <thread>

#include "examples/example.hpp"

namespace weave_examples {

void section_3_1(weave::runtime& rt, const options& opts) {
  section("3.1", "run_in_executor: offload a blocking call to the default pool");
  auto blocking_io = [opts] {
    say("blocking I/O starts");
    std::this_thread::sleep_for(opts.scaled(std::chrono::seconds{2}));
    say("blocking I/O done");
  };
  weave::promise<void> finished;
  rt.system().spawn([=](caf::event_based_actor* self) mutable {
    say("main actor runs here");
    weave::offload(self, blocking_io).then([=]() mutable {
      say("task complete (back in the actor)");
      finished.set_value();
      self->quit();
    });
  });
  finished.get_future().get(); // main is a plain thread: it may wait
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::section_3_1)
