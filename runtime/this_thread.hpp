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

/// Lets go of the actor system the calling thread is pinned to, if any.
///
/// CAF 0.17.6 pins an actor system to every thread that spawned an actor
/// on it or made a `scoped_actor` (a thread-local reference that the
/// system's destructor waits for). weave lets go of the references its own
/// spawns leave, and of the one held by the thread that calls
/// `runtime::shutdown()`; a thread of yours that spawned actors itself and
/// is still running while another thread shuts the runtime down (a signal
/// actor's, say) holds up the end of that shutdown until it ends, and the
/// report counts the shutdown's thread as abandoned. Call this on such a
/// thread once it is done spawning, before it waits for the shutdown: for
/// example on the main thread before it hands the program's end to a
/// signal actor.
///
/// Spawning again pins the thread again. Safe any time, from any thread:
/// twice, on a thread that never spawned, after shutdown. On weave's and
/// CAF's own threads (which let go when they end) it does nothing.
void release_this_thread() noexcept;

} // namespace weave
