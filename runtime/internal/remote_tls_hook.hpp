#pragma once

// Internal: lets a worker started with `--weave-worker-listen` turn on TLS
// when its program links `//runtime:remote_tls` (which sets the hook while
// static objects are initialised), without `//runtime` itself linking
// OpenSSL. Null when the target is not linked.

#include <string>

#include "runtime/remote_tls.hpp"
#include "runtime/runtime_config.hpp"

namespace weave::internal {

using tls_loader = void (*)(runtime_config&, const std::string&,
                            const tls_options&);

tls_loader& tls_hook() noexcept;

} // namespace weave::internal
