// Job labels cost nothing unless used: a literal label allocates nothing,
// on the submitting thread or on the worker that publishes it.
#include <doctest/doctest.h>

#include <string>

#include "runtime/labeled.hpp"
#include "runtime/weave.hpp"
#include "tests/allocation_counter.hpp" // counts this binary's allocations
#include "tests/test_support.hpp"

using weave::test::tl_allocations;

namespace {

/// Allocations on the worker between the end of one job and the start of
/// the next (publishing the second job's activity included).
template <class Second>
size_t worker_cost_between(weave::blocking_pool& pool, Second second) {
  size_t after_first = 0;
  size_t at_second = 0;
  weave::test::latch go{1};
  // The first job holds the worker until both are queued, so the second
  // one follows it on the same worker without a park in between.
  auto a = pool.submit([&] {
    go.wait();
    after_first = tl_allocations;
  });
  auto b = pool.submit(second([&] { at_second = tl_allocations; }));
  go.count_down();
  a.get();
  b.get();
  return at_second - after_first;
}

} // namespace

TEST_CASE("a job labelled with a literal allocates no more than an "
          "unlabelled one") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 1, "alloc"};
  pool.submit([] {}).get(); // the worker exists, the shard is known
  auto plain = [] { return 1; };
  auto before = tl_allocations;
  auto f1 = pool.submit(plain);
  auto unlabelled = tl_allocations - before;
  before = tl_allocations;
  auto f2 = pool.submit(weave::labeled("fetch user", plain));
  auto labelled = tl_allocations - before;
  CHECK(labelled == unlabelled);
  CHECK(f1.get() == 1);
  CHECK(f2.get() == 1);
  auto no_label = worker_cost_between(pool, [](auto fn) { return fn; });
  auto with_label = worker_cost_between(pool, [](auto fn) {
    return weave::labeled("a literal label", fn);
  });
  CHECK(with_label == no_label);
  CHECK(no_label == 0);
}
