#include <doctest/doctest.h>
#include "caf/all.hpp"
TEST_CASE("caf works") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto a = sys.spawn([]() -> caf::behavior { return {[](int x) { return x + 1; }}; });
  int r = 0;
  self->request(a, caf::infinite, 41).receive([&](int x) { r = x; }, [](caf::error&) {});
  CHECK(r == 42);
}
