#pragma once

/// Names and roles of the threads weave runs code on.
///
/// Every thread weave starts carries a readable name, the way Python prints
/// `ThreadPoolExecutor-0_0`: scheduler threads are `weave-sched-N`, pool
/// workers `<pool>_<index>`, loops and blockers the name they were given.
/// `this_thread_name()` returns it (and "main" on the process's first thread),
/// so examples can print which thread ran what. The OS-level name (visible in
/// `top -H`, gdb) is set too, truncated to the kernel's 15 characters.
///
/// Thread-safety: all functions act on the calling thread only.

#include <string>

namespace weave {

/// The calling thread's weave name (see above).
std::string this_thread_name();

/// Renames the calling thread (weave name and OS name).
void set_this_thread_name(std::string name);

/// True if the calling thread must never block: a CAF scheduler or clock
/// thread, or an event loop's own thread. Blocking waits (`future::get`,
/// `channel::put`) refuse to run on such a thread with `would_deadlock`.
bool this_thread_must_not_block() noexcept;

} // namespace weave
