// The resolver's actor runs on the scheduler (it never blocks: lookups run
// on threads of its own), so a handle to it that outlives the shutdown
// holds no thread: the shutdown counts nothing abandoned for it.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "caf/all.hpp"
#include "actors/resolver.hpp"
#include "runtime/weave.hpp"
#include "tests/io_support.hpp"
#include "tests/test_support.hpp"

using namespace std::chrono_literals;
using weave::actors::resolve_atom;
using weave::actors::resolve_deadline;
using weave::actors::resolved_address;

namespace {

/// The lookup deadline (generous: the answer comes at once).
constexpr auto lookup_deadline = 10s;

/// The shutdown deadline (generous: nothing is stuck).
constexpr auto shutdown_deadline = 5s;

/// Resolves localhost through `dns`; the answer's error (none on success).
caf::error resolve_localhost(caf::actor_system& sys,
                             const weave::actors::resolver_actor& dns) {
  caf::error err;
  caf::scoped_actor self{sys};
  self
    ->request(dns, caf::infinite, resolve_atom::value,
              std::string{"localhost"}, uint16_t{80},
              resolve_deadline(lookup_deadline))
    .receive([](std::vector<resolved_address>&) {},
             [&](caf::error& e) { err = std::move(e); });
  return err;
}

} // namespace

TEST_CASE("a resolver handle held at shutdown is not counted as an abandoned "
          "thread") {
  weave::runtime rt{weave::test::io_config()};
  auto dns = weave::actors::spawn_resolver(rt);
  CHECK(resolve_localhost(rt.system(), dns) == caf::error{});
  CHECK(rt.slow_handlers() == 0);
  // `dns` is still held here.
  auto report = rt.shutdown(shutdown_deadline);
  INFO(report.to_string());
  CHECK(report.threads_abandoned == 0);
  CHECK(report.empty());
  CHECK(report.total < shutdown_deadline);
}
