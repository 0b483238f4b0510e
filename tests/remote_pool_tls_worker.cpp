// The worker program of the remote pool TLS tests: the shared test jobs,
// linked with //runtime:remote_tls so that --weave-tls-* flags work.

#include "runtime/process_pool.hpp"
#include "tests/process_pool_jobs.hpp"

int main(int argc, char** argv) {
  return weave::run_worker_process(argc, argv);
}
