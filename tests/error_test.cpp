// weave's error helpers: an empty caf::error (no error) is a valid input to
// every one of them (CAF 0.17.6's category() and code() dereference the
// error's data, so calling them on an empty error crashes).
#include <doctest/doctest.h>

#include "caf/all.hpp"
#include "runtime/offload.hpp"
#include "runtime/weave.hpp"

TEST_CASE("the error helpers take an empty error") {
  caf::error none;
  CHECK_FALSE(weave::is(none, weave::errc::timeout));
  CHECK_FALSE(weave::is(none, weave::errc::worker_lost));
  CHECK_FALSE(weave::internal::is_request_timeout(none));
  CHECK(weave::render(none) == "no error");
  CHECK(weave::exception{none}.code() == weave::errc{});
  weave::maybe_executed(none); // crashed before: is() read the empty error
}

TEST_CASE("the error helpers tell weave's errors from CAF's") {
  auto timeout = weave::make_error(weave::errc::timeout, "late");
  CHECK(weave::is(timeout, weave::errc::timeout));
  CHECK_FALSE(weave::is(timeout, weave::errc::cancelled));
  CHECK(weave::exception{timeout}.code() == weave::errc::timeout);
  caf::error caf_timeout = caf::sec::request_timeout;
  CHECK(weave::internal::is_request_timeout(caf_timeout));
  CHECK_FALSE(weave::is(caf_timeout, weave::errc::timeout));
  CHECK(weave::exception{caf_timeout}.code() == weave::errc{});
}
