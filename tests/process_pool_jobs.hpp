#pragma once

// Registered jobs shared by the process pool tests and their worker
// programs (the test binary and process_pool_test_worker both link
// process_pool_jobs.cpp).

#include <cstdint>
#include <string>

#include "runtime/registered_job.hpp"

namespace weave::test {

/// How a `crash` job ends its worker process.
enum crash_kind : int { crash_segfault = 0, crash_abort = 1, crash_exit = 2 };

/// The exit status of a `crash_exit` job's worker.
constexpr int crash_exit_status = 7;

/// How long a `hold` job waits for its gate file at most.
constexpr int hold_limit_ms = 30000;

/// In $TEST_TMPDIR: the test worker program logs each start to this file,
/// and exits at start with `crash_at_start_status` while the other exists
/// (see process_pool_test_worker.cpp).
constexpr const char* worker_start_log = "worker_starts";
constexpr const char* crash_at_start = "crash_at_start";
constexpr int crash_at_start_status = 5;

} // namespace weave::test

WEAVE_JOB(square, int(int x));
WEAVE_JOB(whoami, int32_t());
WEAVE_JOB(fail_with, int(std::string message));
WEAVE_JOB(crash, int(int kind));
/// Appends `tag` to the file `log`, waits until the file `gate` exists
/// (none: no wait), returns the worker's pid.
WEAVE_JOB(hold, int32_t(uint64_t tag, std::string log, std::string gate));
WEAVE_IDEMPOTENT_JOB(hold_idempotent,
                     int32_t(uint64_t tag, std::string log, std::string gate));
/// Appends `tag` to `<dir>/exec.<pid>` (one file per worker process, kept
/// open), then returns the worker's pid, or throws if `fail`.
WEAVE_JOB(tally, int32_t(uint64_t tag, std::string dir, bool fail));
WEAVE_IDEMPOTENT_JOB(tally_idempotent,
                     int32_t(uint64_t tag, std::string dir, bool fail));
