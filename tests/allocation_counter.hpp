#pragma once

// Replaces the global `operator new` of the test binary that includes it,
// counting allocations per thread (`weave::test::tl_allocations`), to check
// what an operation costs on the calling thread. Include it from exactly one
// source file of a test binary.

#include <cstddef>
#include <cstdlib>
#include <new>

namespace weave::test {

/// Allocations made by the calling thread so far.
inline thread_local size_t tl_allocations = 0;

} // namespace weave::test

void* operator new(std::size_t n) {
  ++weave::test::tl_allocations;
  if (void* p = std::malloc(n != 0 ? n : 1))
    return p;
  throw std::bad_alloc{};
}

void operator delete(void* p) noexcept {
  std::free(p);
}

void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
