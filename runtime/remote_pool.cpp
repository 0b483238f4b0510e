#include "runtime/remote_pool.hpp"

#include "caf/actor_cast.hpp"
#include "caf/io/middleman.hpp"

#include "runtime/internal/remote_pool_impl.hpp"
#include "runtime/internal/remote_tls_hook.hpp"
#include "runtime/this_thread.hpp"

namespace weave {

void enable_remote_pools(runtime_config& cfg, const std::string& app_id) {
  if (app_id.empty())
    raise(make_error(errc::invalid_argument,
                     "enable_remote_pools: empty application id"));
  enable_process_pools(cfg);
  cfg.set("middleman.app-identifiers", std::vector<std::string>{app_id});
}

remote_pool::remote_pool(runtime& rt, remote_pool_options opts)
  : impl_(std::make_shared<internal::remote_pool_impl>(rt, std::move(opts))),
    shutdown_deadline_(rt.config().shutdown_deadline()) {
  impl_->start();
}

remote_pool::~remote_pool() {
  auto d = this_thread_must_not_block() ? caf::timespan{0} : shutdown_deadline_;
  shutdown(d);
}

void remote_pool::enqueue(internal::remote_call_ptr c, caf::timespan timeout) {
  impl_->enqueue(std::move(c), timeout);
}

remote_pool::stats_type remote_pool::stats() const {
  return impl_->stats();
}

std::vector<remote_pool::node_info> remote_pool::nodes() const {
  return impl_->nodes();
}

const std::string& remote_pool::name() const noexcept {
  return impl_->options().name;
}

size_t remote_pool::size() const noexcept {
  return impl_->options().workers.size();
}

shutdown_report remote_pool::shutdown(caf::timespan deadline) {
  if (deadline < caf::timespan::zero())
    raise(make_error(errc::invalid_argument,
                     "remote_pool::shutdown: negative deadline"));
  shutdown_report report;
  auto start = internal::steady_clock::now();
  impl_->begin_shutdown(report);
  impl_->finish_shutdown(internal::saturating_add(start, deadline), report);
  report.total = internal::steady_clock::now() - start;
  return report;
}

} // namespace weave

namespace weave::internal {

tls_loader& tls_hook() noexcept {
  static tls_loader hook = nullptr;
  return hook;
}

tls_actor_getter& tls_actor_hook() noexcept {
  static tls_actor_getter hook = nullptr;
  return hook;
}

caf::actor connecting_actor(caf::actor_system& sys) {
  if (sys.has_openssl_manager() && tls_actor_hook() != nullptr)
    return tls_actor_hook()(sys);
  return caf::actor_cast<caf::actor>(sys.middleman().actor_handle());
}

} // namespace weave::internal
