// a thread started from an actor: the actor starts one long blocking
// function on a thread of its own (threading.Thread(target=...)), keeps
// serving meanwhile, and continues when the thread finishes.
#include <thread>

#include "examples/example.hpp"

namespace weave_examples {

void section_6_1(weave::runtime& rt, const options& opts) {
  section("6.1", "an actor starts a thread and continues when it finishes");
  weave::promise<void> finished;
  rt.system().spawn([=](caf::event_based_actor* self) mutable {
    say("actor starts a blocker thread");
    auto task = weave::spawn_blocker(
      self,
      [opts] {
        say("blocking task starts");
        std::this_thread::sleep_for(opts.scaled(std::chrono::seconds{2}));
        say("blocking task done");
        return 2;
      },
      "Thread-1");
    say("actor is free meanwhile; blocker actor: ",
        caf::to_string(task.actor().address()).empty() ? "?" : "started");
    task.then([=](int seconds) mutable {
      say("the thread's task has finished (it slept ", seconds, " units)");
      finished.set_value();
      self->quit();
    });
  });
  finished.get_future().get();
}

} // namespace weave_examples

WEAVE_EXAMPLE_MAIN(weave_examples::section_6_1)
