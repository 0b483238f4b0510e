#pragma once

// Internal: marks threads by role and counts them (see thread_census.hpp).

#include <atomic>
#include <cstddef>
#include <string>

namespace weave::internal {

/// Marks the calling thread as one that must never block.
void set_this_thread_must_not_block(bool value) noexcept;

/// The calling thread's OS-level name (what CAF set, e.g. "caf.clock").
std::string this_thread_os_name();

/// Census hooks, called by the runtime's CAF thread hook.
void census_thread_started() noexcept;
void census_thread_ended() noexcept;
void census_late_result_dropped() noexcept;

} // namespace weave::internal
