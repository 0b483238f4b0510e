// A worker program whose job table does not match the tests': it declares
// `square` with another signature. A pool must refuse it at connect.

#include "runtime/process_pool.hpp"

WEAVE_JOB(square, long(long x));
WEAVE_JOB_IMPL(square, [](long x) { return x * x; });

int main(int argc, char** argv) {
  return weave::run_worker_process(argc, argv);
}
