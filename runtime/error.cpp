#include "runtime/error.hpp"

#include "caf/deep_to_string.hpp"
#include "caf/message.hpp"

namespace weave {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::cancelled:
      return "cancelled";
    case errc::timeout:
      return "timeout";
    case errc::closed:
      return "closed";
    case errc::shut_down:
      return "shut_down";
    case errc::job_failed:
      return "job_failed";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::invalid_config:
      return "invalid_config";
    case errc::would_deadlock:
      return "would_deadlock";
    case errc::already_retrieved:
      return "already_retrieved";
    case errc::gave_up:
      return "gave_up";
    case errc::broken_promise:
      return "broken_promise";
    case errc::io_error:
      return "io_error";
    case errc::full:
      return "full";
    case errc::worker_lost:
      return "worker_lost";
    case errc::registry_mismatch:
      return "registry_mismatch";
  }
  return "unknown";
}

caf::error make_error(errc code) {
  return caf::error{static_cast<uint8_t>(code), error_category};
}

caf::error make_error(errc code, std::string what) {
  return caf::error{static_cast<uint8_t>(code), error_category,
                    caf::make_message(std::move(what))};
}

bool is(const caf::error& err, errc code) noexcept {
  // CAF 0.17.6's category() and code() read the error's data: an empty
  // error has none.
  return err && err.category() == error_category
         && err.code() == static_cast<uint8_t>(code);
}

std::string render(const caf::error& err) {
  if (!err)
    return "no error";
  if (err.category() != error_category)
    return caf::to_string(err);
  std::string result = "weave::";
  result += to_string(static_cast<errc>(err.code()));
  auto& ctx = err.context();
  if (ctx.match_elements<std::string>()) {
    result += ": ";
    result += ctx.get_as<std::string>(0);
  } else if (!ctx.empty()) {
    result += ": ";
    result += caf::to_string(ctx);
  }
  return result;
}

exception::exception(caf::error err)
  : std::runtime_error(render(err)), error_(std::move(err)) {
  // nop
}

errc exception::code() const noexcept {
  return error_ && error_.category() == error_category
           ? static_cast<errc>(error_.code())
           : errc{};
}

void raise(caf::error err) {
  throw exception{std::move(err)};
}

} // namespace weave
