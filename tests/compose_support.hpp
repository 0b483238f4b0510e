#pragma once

// Helpers shared by the suites of when_all, gather, when_any and
// as_completed: error probes, futures of promises, and 16 threads racing to
// complete 1000 promises in a random order.

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

namespace weave::test {

/// Threads completing promises at once in the racing tests.
constexpr size_t racing_threads = 16;

/// Promises those threads complete.
constexpr size_t racing_promises = 1000;

/// The code of the weave exception `fn` throws (0 if none).
template <class F>
errc code_of(F&& fn) {
  try {
    fn();
  } catch (const exception& e) {
    return e.code();
  }
  return errc{};
}

/// The message of the weave exception `fn` throws ("" if none).
template <class F>
std::string message_of(F&& fn) {
  try {
    fn();
  } catch (const exception& e) {
    return e.what();
  }
  return "";
}

template <class T>
std::vector<future<T>> futures_of(std::vector<promise<T>>& ps) {
  std::vector<future<T>> fs;
  for (auto& p : ps)
    fs.push_back(p.get_future());
  return fs;
}

/// 0 .. n-1 in a random order.
inline std::vector<size_t> shuffled(size_t n, unsigned seed) {
  std::vector<size_t> xs(n);
  std::iota(xs.begin(), xs.end(), size_t{0});
  std::shuffle(xs.begin(), xs.end(), std::mt19937{seed});
  return xs;
}

/// Which racing thread completes which promise, in which order: a random
/// split of all of them.
inline std::vector<std::vector<size_t>> random_shares(unsigned seed) {
  auto order = shuffled(racing_promises, seed);
  std::vector<std::vector<size_t>> shares(racing_threads);
  for (size_t k = 0; k < order.size(); ++k)
    shares[k % racing_threads].push_back(order[k]);
  return shares;
}

/// Completes `ps` from one thread per share, each its share in its order,
/// all released at once: promise `i` gets the value `i`, or, if `fail_every`
/// is not 0 and divides `i`, the error `job_failed` with message `i`.
inline void complete_racing(std::vector<promise<size_t>>& ps,
                            const std::vector<std::vector<size_t>>& shares,
                            size_t fail_every = 0) {
  latch go{1};
  std::vector<std::thread> threads;
  for (auto& share : shares)
    threads.emplace_back([&] {
      go.wait();
      for (auto i : share) {
        if (fail_every != 0 && i % fail_every == 0)
          ps[i].set_error(make_error(errc::job_failed, std::to_string(i)));
        else
          ps[i].set_value(i);
      }
    });
  go.count_down();
  for (auto& th : threads)
    th.join();
}

/// True if every share appears in `seen` in the share's own order (a
/// thread completes its promises one after the other, so a consumer must
/// see them in that order).
inline bool keeps_each_threads_order(
  const std::vector<size_t>& seen,
  const std::vector<std::vector<size_t>>& shares) {
  std::vector<size_t> rank(racing_promises);
  for (size_t k = 0; k < seen.size(); ++k)
    rank[seen[k]] = k;
  for (auto& share : shares)
    for (size_t k = 1; k < share.size(); ++k)
      if (rank[share[k - 1]] > rank[share[k]])
        return false;
  return true;
}

} // namespace weave::test
