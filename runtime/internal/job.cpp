#include "runtime/internal/job.hpp"

#include <exception>
#include <string>
#include <typeinfo>

namespace weave::internal {

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
