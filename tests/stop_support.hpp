#pragma once

// Shared by the suites on stopping running jobs: a runtime configuration
// with a given grace period, a job that takes a token (honouring or
// ignoring it), the weave error code of a failed future, and the code of
// a thrown weave exception.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

namespace weave::test {

/// The weave error code an exception thrown by `fn` carries, or "".
template <class F>
std::string thrown_code(F fn) {
  try {
    fn();
  } catch (const weave::exception& e) {
    return weave::to_string(e.code());
  }
  return "";
}

/// A grace period short enough for quick tests; the assertions wait on
/// outcomes, never on this time.
constexpr auto short_grace = std::chrono::milliseconds{50};

/// A grace period no test reaches: a job that honours its token ends long
/// before it.
constexpr auto long_grace = std::chrono::milliseconds{60'000};

inline weave::runtime_config config(std::chrono::milliseconds grace,
                                    size_t max_quarantined = 4) {
  weave::runtime_config cfg;
  cfg.set("weave.cancel-grace", caf::timespan{grace});
  cfg.set("weave.max-quarantined", max_quarantined);
  return cfg;
}

/// The weave error code `f` failed with (fails the test if it holds a
/// value).
inline weave::errc error_of(weave::future<int>& f) {
  auto r = f.get_result();
  REQUIRE_FALSE(r);
  REQUIRE(r.error().category() == caf::atom("weave"));
  return static_cast<weave::errc>(r.error().code());
}

/// A token job that says it runs, then waits for its stop (`honouring`) or
/// for `release` only (`ignoring`), and records the cause it saw;
/// `release` also bounds an honouring job, so that no thread outlives its
/// test by long even when a stop never comes.
struct token_job {
  std::shared_ptr<latch> entered = std::make_shared<latch>(1);
  std::shared_ptr<latch> release = std::make_shared<latch>(1);
  std::shared_ptr<std::atomic<int>> seen
    = std::make_shared<std::atomic<int>>(-1);
  std::shared_ptr<std::atomic<int>> returned
    = std::make_shared<std::atomic<int>>(0);

  auto honouring() const {
    return [entered = entered, release = release, seen = seen,
            returned = returned](weave::stop_token st) {
      entered->count_down();
      while (!st.stop_requested() && !release->ready())
        weave::sleep_for(st, std::chrono::milliseconds{1});
      seen->store(static_cast<int>(st.cause()));
      returned->fetch_add(1);
      return 42; // cut short: the caller gets the cause, not this
    };
  }

  auto ignoring() const {
    return [entered = entered, release = release, seen = seen,
            returned = returned](weave::stop_token st) {
      entered->count_down();
      release->wait(std::chrono::hours{1});
      seen->store(static_cast<int>(st.cause()));
      returned->fetch_add(1);
      return 7;
    };
  }
};

} // namespace weave::test
