#include "runtime/process_pool.hpp"

#include "caf/io/middleman.hpp"

#include "runtime/internal/process_pool_impl.hpp"
#include "runtime/this_thread.hpp"

namespace weave {

namespace {

/// The start of a `worker_lost`, `cancelled` or `timeout` message for a
/// job that never ran.
constexpr const char not_started_mark[] = "not started";

} // namespace

void enable_process_pools(runtime_config& cfg) {
  cfg.load<caf::io::middleman>();
  if (caf::get_or(cfg, "middleman.heartbeat-interval", caf::timespan{0})
      == caf::timespan{0})
    cfg.set("middleman.heartbeat-interval", default_heartbeat_interval);
  if (caf::get_or(cfg, "middleman.connection-timeout", caf::timespan{0})
      == caf::timespan{0})
    cfg.set("middleman.connection-timeout", default_connection_timeout);
}

bool maybe_executed(const caf::error& err) noexcept {
  // A job lost with its worker, or one its worker dropped at its cancel
  // or timeout, carries the mark when it never ran.
  if (!is(err, errc::worker_lost) && !is(err, errc::cancelled)
      && !is(err, errc::timeout))
    return true;
  auto& ctx = err.context();
  if (!ctx.match_elements<std::string>())
    return true;
  auto& text = ctx.get_as<std::string>(0);
  return text.compare(0, sizeof(not_started_mark) - 1, not_started_mark) != 0;
}

process_pool::process_pool(runtime& rt, process_pool_options opts)
  : impl_(std::make_shared<internal::process_pool_impl>(rt, std::move(opts))),
    shutdown_deadline_(rt.config().shutdown_deadline()) {
  impl_->start();
}

process_pool::process_pool(runtime& rt, size_t workers)
  : process_pool(rt, [workers] {
      process_pool_options opts;
      opts.workers = workers;
      return opts;
    }()) {
  // nop
}

process_pool::~process_pool() {
  // On a thread that must never block: stop the workers at once.
  auto d = this_thread_must_not_block() ? caf::timespan{0} : shutdown_deadline_;
  shutdown(d);
}

void process_pool::enqueue(internal::remote_call_ptr c, caf::timespan timeout) {
  impl_->enqueue(std::move(c), timeout);
}

process_pool::stats_type process_pool::stats() const {
  return impl_->stats();
}

std::vector<int> process_pool::worker_pids() const {
  return impl_->worker_pids();
}

const std::string& process_pool::name() const noexcept {
  return impl_->options().name;
}

size_t process_pool::size() const noexcept {
  return impl_->options().workers;
}

shutdown_report process_pool::shutdown(caf::timespan deadline) {
  if (deadline < caf::timespan::zero())
    raise(make_error(errc::invalid_argument,
                     "process_pool::shutdown: negative deadline"));
  shutdown_report report;
  auto start = internal::steady_clock::now();
  impl_->begin_shutdown(report);
  impl_->finish_shutdown(internal::saturating_add(start, deadline), report);
  report.total = internal::steady_clock::now() - start;
  return report;
}

} // namespace weave

namespace weave::internal {

size_t process_pool_access::claimed(const process_pool& pool) {
  return pool.impl_->claimed();
}

} // namespace weave::internal
