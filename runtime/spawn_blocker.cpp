#include "runtime/spawn_blocker.hpp"

namespace weave::internal {

caf::actor launch_blocker(runtime& rt, job_ptr j, std::string name) {
  auto set = rt.blockers();
  if (!set->enter()) {
    j->cancel_with(make_error(errc::shut_down, "the runtime is shut down"));
    return {};
  }
  return rt.system().spawn<caf::hidden>(
    [j, name, set](caf::blocking_actor* self) {
      set_this_thread_name(name);
      if (j->try_start()) {
        if (!j->run())
          self->fail_state(j->failure);
        j->deliver();
      }
      set->leave();
    });
}

} // namespace weave::internal
