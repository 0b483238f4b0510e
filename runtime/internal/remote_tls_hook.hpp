#pragma once

// Internal: lets a worker started with `--weave-worker-listen` turn on TLS
// when its program links `//runtime:remote_tls` (which sets the hook while
// static objects are initialised), without `//runtime` itself linking
// OpenSSL. Null when the target is not linked.

#include <string>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"

#include "runtime/remote_tls.hpp"
#include "runtime/runtime_config.hpp"

namespace weave::internal {

using tls_loader = void (*)(runtime_config&, const std::string&,
                            const tls_options&);

tls_loader& tls_hook() noexcept;

/// The OpenSSL module's middleman actor (only `//runtime:remote_tls` may
/// name `caf::openssl::manager`: its type information lives in
/// libcaf_openssl).
using tls_actor_getter = caf::actor (*)(caf::actor_system&);

tls_actor_getter& tls_actor_hook() noexcept;

/// The middleman actor that connects and publishes: the OpenSSL module's
/// if it is loaded, the plain middleman's otherwise.
caf::actor connecting_actor(caf::actor_system& sys);

} // namespace weave::internal
