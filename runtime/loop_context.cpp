#include "runtime/loop_context.hpp"

#include "runtime/internal/loop_impl.hpp"

namespace weave {

caf::event_based_actor* loop_context::self() const {
  if (!running())
    raise(internal::loop_ended_error(impl_));
  return self_;
}

const std::string& loop_context::name() const noexcept {
  return impl_.name();
}

bool loop_context::running() const noexcept {
  return !impl_.ended();
}

future<void> loop_context::sleep(caf::timespan delay) {
  if (delay < caf::timespan{0})
    return internal::failed_future<void>(make_error(
      errc::invalid_argument, "loop_context::sleep: negative delay"));
  auto b = bind<void>();
  if (b.state == nullptr || delay >= internal::max_timer_delay)
    return std::move(b.fut); // ended; or never fires, fails at the end
  auto fire = [st = std::move(b.state)] { st->set_value(); };
  impl_.wake_after(delay, caf::make_counted<internal::post_job<decltype(fire)>>(
                            std::move(fire)));
  return std::move(b.fut);
}

bool loop_context::post_soon(internal::job_ptr task) {
  return impl_.dispatch(std::move(task), nullptr, false);
}

} // namespace weave
