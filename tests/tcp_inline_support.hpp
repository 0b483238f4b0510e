#pragma once

// Shared by the suites of the turns on the TCP I/O thread
// (actors/internal/io_unit.hpp): a runtime configuration with a turn
// budget, an actor whose read waits for readiness, and the rule for rounds
// that must begin on the I/O thread.

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <future>
#include <string>
#include <thread>

#include "caf/all.hpp"
#include "runtime/error.hpp"
#include "runtime/runtime_config.hpp"
#include "tests/io_support.hpp"
#include "tests/tcp_support.hpp"
#include "tests/test_support.hpp"

namespace weave::test::tcp {

/// `turns` turns per readiness; `gather` fixed (the default, `never`, is
/// what these suites test: a loaded machine under `auto` would gather);
/// `threads` scheduler threads if not 0.
inline weave::runtime_config turns_config(size_t turns,
                                          const char* gather = "never",
                                          size_t threads = 0) {
  auto cfg = weave::test::io_config();
  cfg.set("weave.tcp-inline-turns", turns);
  cfg.set("weave.tcp-gather", std::string{gather});
  if (threads > 0)
    cfg.set("scheduler.max-threads", threads);
  return cfg;
}

/// Spawns an actor that asks `p.conn` for a line and runs `then` with it in
/// its answer's handler; returns once the read waits for readiness (so its
/// answer comes from a readiness, not from bytes already there).
template <class F>
caf::actor read_then(raw_peer& p, F then) {
  auto before = p.stats().reads_waited;
  auto a = p.rt.system().spawn(
    [conn = p.conn, then](caf::event_based_actor* self) {
      self->request(conn, caf::infinite, read_line_atom::value)
        .then([=](std::string& line) mutable { then(self, line); },
              [=](caf::error& err) mutable {
                then(self, "error: " + weave::render(err));
              });
    });
  REQUIRE(weave::test::eventually(
    [&] { return p.stats().reads_waited == before + 1; }));
  // The connection's turn that answered the last stats request may still
  // be ending on a worker; bytes sent at once would find it there, and on
  // a loaded machine round after round (docs/design.md, "Readiness
  // without a message"). A pause makes that rare; the tests still repeat
  // a round that began on a worker (max_rounds), so none relies on it.
  std::this_thread::sleep_for(std::chrono::milliseconds{1});
  return a;
}

/// The value of `f`, which must be ready within the test's patience.
template <class T>
T take(std::future<T>& f) {
  REQUIRE(f.wait_for(weave::test::patience) == std::future_status::ready);
  return f.get();
}

/// A readiness runs the connection's actor on the I/O thread only if that
/// actor is idle. `read_then` learns that the read waits by asking the
/// connection for its stats, and the connection's turn that answered may
/// still be finishing on a worker when the bytes arrive (then the
/// readiness is handled in that turn, on the worker): a test that needs a
/// chain to start on the I/O thread repeats its round until one did.
constexpr int max_rounds = 50;

} // namespace weave::test::tcp
