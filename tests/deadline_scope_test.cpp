// deadline_scope: a deadline set by a caller bounds every job started under
// it, however deep (a job's own deadline is the thread's while it runs, and
// jobs it submits inherit it); nested scopes: the tightest wins.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>

#include "caf/all.hpp"
#include "runtime/weave.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::errc;
using weave::test::latch;
using time_point = std::chrono::steady_clock::time_point;

namespace {

constexpr auto never = time_point::max();

} // namespace

TEST_CASE("scopes nest: the tightest deadline wins, and each scope's end "
          "restores the enclosing one") {
  CHECK(weave::current_deadline() == never);
  {
    weave::deadline_scope outer{10s};
    auto d_outer = weave::current_deadline();
    CHECK(d_outer != never);
    {
      weave::deadline_scope looser{1h}; // cannot extend the outer one
      CHECK(weave::current_deadline() == d_outer);
      weave::deadline_scope tighter{1s};
      CHECK(weave::current_deadline() < d_outer);
    }
    CHECK(weave::current_deadline() == d_outer);
  }
  CHECK(weave::current_deadline() == never);
  {
    weave::deadline_scope forever{std::chrono::hours::max()};
    CHECK(weave::current_deadline() == never);
  }
}

TEST_CASE("a negative or NaN scope duration is refused with invalid_argument") {
  auto is_invalid = [](auto d) {
    try {
      weave::deadline_scope s{d};
      return false;
    } catch (const weave::exception& e) {
      return weave::is(e.error(), errc::invalid_argument);
    }
  };
  CHECK(is_invalid(-1ms));
  CHECK(is_invalid(std::chrono::duration<double>{std::nan("")}));
  CHECK(weave::current_deadline() == never);
}

TEST_CASE("a job runs under its deadline; jobs it submits inherit it, a "
          "tighter own timeout still wins") {
  weave::runtime rt;
  weave::blocking_pool outer_pool{rt, 1, "outer"};
  weave::blocking_pool inner_pool{rt, 2, "inner"};
  time_point scope_deadline;
  weave::future<std::pair<time_point, time_point>> f;
  {
    weave::deadline_scope scope{30s};
    scope_deadline = weave::current_deadline();
    f = outer_pool.submit([&inner_pool] {
      auto mine = weave::current_deadline();
      auto inherited = inner_pool.submit([] {
        return weave::current_deadline();
      });
      return std::make_pair(mine, inherited.get());
    });
  }
  auto [mine, inherited] = f.get();
  CHECK(mine == scope_deadline);
  CHECK(inherited == scope_deadline);
  // Outside any scope again: no deadline.
  CHECK(outer_pool.submit([] { return weave::current_deadline(); }).get()
        == never);
  // A tighter timeout than the scope's wins.
  weave::deadline_scope scope{30s};
  auto tight = outer_pool.submit([] { return weave::current_deadline(); }, 1s)
                 .get();
  CHECK(tight < weave::current_deadline());
}

TEST_CASE("a token job started under a scope is stopped at the scope's "
          "deadline, also through a job that submitted it") {
  weave::runtime rt;
  weave::blocking_pool pool{rt, 2, "nested"};
  // Both workers started and idle first: the jobs must be running, not
  // waiting for a worker to start, when the scope's deadline passes (on a
  // loaded machine under a sanitizer, starting a worker can take longer).
  {
    latch both{2};
    auto a = pool.submit([&both] { both.count_down(); both.wait(); });
    auto b = pool.submit([&both] { both.count_down(); both.wait(); });
    a.get();
    b.get();
  }
  auto seen = std::make_shared<std::atomic<int>>(-1);
  weave::future<int> outer;
  {
    weave::deadline_scope scope{weave::test::start_window};
    outer = pool.submit([&pool, seen] {
      auto inner = pool.submit([seen](weave::stop_token st) {
        weave::sleep_for(st, std::chrono::hours{1});
        seen->store(static_cast<int>(st.cause()));
        return 1;
      });
      auto r = inner.get_result();
      return r ? 0 : static_cast<int>(r.error().code());
    });
  }
  CHECK(outer.get() == static_cast<int>(errc::timeout));
  CHECK(seen->load() == static_cast<int>(errc::timeout));
}

TEST_CASE("an offload made under a scope in an actor's handler times out at "
          "the scope's deadline") {
  weave::runtime rt;
  auto code = std::make_shared<std::atomic<int>>(-1);
  auto done = std::make_shared<latch>(1);
  auto release = std::make_shared<latch>(1);
  rt.system().spawn([code, done, release](caf::event_based_actor* self) {
    weave::deadline_scope scope{30ms};
    weave::offload(self, [release] { release->wait(); })
      .then([code, done] {
              code->store(0);
              done->count_down();
            },
            [code, done](caf::error& err) {
              code->store(err.code());
              done->count_down();
            });
  });
  REQUIRE(done->wait());
  release->count_down();
  CHECK(code->load() == static_cast<int>(errc::timeout));
}
