#pragma once

// Internal: how a TCP actor (listener or connection) answers the reactor's
// `(tcp_stop_atom)` at the runtime's shutdown: it fails everything it owes
// with `shut_down` and quits. Runs in the actor's handler; takes no lock.

#include <string>

#include "caf/exit_reason.hpp"

#include "runtime/error.hpp"

namespace weave::actors::internal {

/// Fails what `self` owes (its state's `fail`) with `shut_down`, the message
/// naming the actor (`who`: "tcp listener on ...", "tcp connection to
/// ..."), and quits.
template <class Self>
void stop_for_shutdown(Self* self, const std::string& who) {
  self->state.fail(
    make_error(errc::shut_down, who + ": the runtime is shutting down"));
  self->quit(caf::exit_reason::user_shutdown);
}

} // namespace weave::actors::internal
