#include "runtime/internal/job.hpp"

#include <exception>
#include <string>
#include <typeinfo>

#include "runtime/error.hpp"

namespace weave::internal {

namespace {

thread_local self_wait_guard* tl_guard = nullptr;

} // namespace

self_wait_guard* current_self_wait_guard() noexcept {
  return tl_guard;
}

void set_current_self_wait_guard(self_wait_guard* guard) noexcept {
  tl_guard = guard;
}

caf::error current_exception_error() {
  try {
    throw;
  } catch (const weave::exception& e) {
    return e.error();
  } catch (...) {
    return make_error(errc::job_failed, current_exception_message());
  }
}

std::string current_exception_message() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (const std::string& s) {
    return s;
  } catch (const char* s) {
    return s;
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

} // namespace weave::internal
