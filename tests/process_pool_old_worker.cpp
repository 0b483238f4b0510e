// A worker program of "another weave version": it joins its pool with the
// right job table but without the pool protocol's line (protocol_line), as
// a worker program built before that line existed would. A pool must
// refuse it at connect with an error naming the protocol.

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "caf/all.hpp"
#include "caf/io/all.hpp"

#include "runtime/internal/remote_pool_impl.hpp"
#include "runtime/internal/remote_protocol.hpp"
#include "runtime/internal/remote_registry.hpp"
#include "runtime/process_pool.hpp"
#include "runtime/runtime.hpp"
#include "tests/process_pool_jobs.hpp"

int main(int argc, char** argv) {
  // Started as "<program> --weave-process-worker host port slot gen threads".
  if (argc != 7)
    return 2;
  auto port = static_cast<uint16_t>(std::strtoul(argv[3], nullptr, 10));
  weave::runtime_config cfg;
  weave::enable_process_pools(cfg);
  // As a real worker does: its pool's application ids are its own.
  auto ids = weave::internal::probe_app_ids(argv[2], port,
                                            std::chrono::seconds{5});
  if (!ids.empty())
    cfg.set("middleman.app-identifiers", std::move(ids));
  weave::runtime rt{std::move(cfg)};
  auto slot = static_cast<uint32_t>(std::strtoul(argv[4], nullptr, 10));
  auto gen = static_cast<uint32_t>(std::strtoul(argv[5], nullptr, 10));
  auto pool = rt.system().middleman().remote_actor(argv[2], port);
  if (!pool)
    return 3;
  caf::scoped_actor self{rt.system()};
  self->send(*pool, weave::internal::join_atom::value,
             caf::actor_cast<caf::actor>(self), slot, gen,
             static_cast<int32_t>(::getpid()),
             weave::internal::job_registry::instance().describe());
  // The pool kills a refused worker; wait for that.
  ::pause();
  return 0;
}
