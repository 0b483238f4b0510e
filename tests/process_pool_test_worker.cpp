// The worker program of the process pool tests: the shared test jobs, and
// a main that only runs as a pool worker.

#include "runtime/process_pool.hpp"
#include "tests/process_pool_jobs.hpp"

int main(int argc, char** argv) {
  return weave::run_worker_process(argc, argv);
}
