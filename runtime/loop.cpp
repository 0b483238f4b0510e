#include "runtime/loop.hpp"

#include "runtime/internal/loop_impl.hpp"
#include "runtime/internal/runtime_access.hpp"
#include "runtime/internal/thread_roles.hpp"
#include "runtime/runtime.hpp"
#include "runtime/this_thread.hpp"

namespace weave {

loop::loop(runtime& rt, std::string name, placement where)
  : impl_(std::make_shared<internal::loop_impl>(
    std::move(name), where, internal::runtime_access::timer(rt))) {
  if (rt.shutting_down())
    raise(make_error(errc::shut_down, "the runtime is shut down"));
  internal::runtime_access::start_component(rt, impl_, [this](caf::actor_system& sys) { impl_->start(sys); });
}

loop::~loop() {
  stop();
  if (impl_->on_own_thread() || impl_->in_own_task()
      || this_thread_must_not_block())
    return; // waiting would wait for ourselves, or block a scheduler thread
  impl_->join();
}

bool loop::dispatch(internal::job_ptr j, internal::loop_pending* pending) {
  return impl_->dispatch(std::move(j), pending);
}

void loop::stop() {
  impl_->stop();
}

void loop::join() {
  if (impl_->on_own_thread() || impl_->in_own_task())
    raise(make_error(errc::would_deadlock,
                     "loop::join called inside loop '" + impl_->name()
                       + "' itself"));
  internal::check_may_block("loop::join");
  impl_->join();
}

bool loop::stopped() const noexcept {
  return impl_->stopped();
}

caf::actor loop::actor() const {
  return impl_->actor();
}

const std::string& loop::name() const noexcept {
  return impl_->name();
}

void loop::set_exception_handler(
  std::function<void(const caf::error&)> handler) {
  impl_->set_handler(std::move(handler));
}

loop::stats_type loop::stats() const {
  return impl_->stats();
}

} // namespace weave
