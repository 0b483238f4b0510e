#include "runtime/internal/watched_policy.hpp"

#include "caf/scheduler/coordinator.hpp"

namespace weave::internal {

caf::actor_system::module* make_watched_scheduler(caf::actor_system& sys) {
  return new caf::scheduler::coordinator<watched_policy>(sys);
}

} // namespace weave::internal
