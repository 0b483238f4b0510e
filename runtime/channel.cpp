#include "runtime/channel.hpp"

#include <atomic>

namespace weave {

const char* to_string(channel_status s) noexcept {
  switch (s) {
    case channel_status::ok:
      return "ok";
    case channel_status::timeout:
      return "timeout";
    case channel_status::closed:
      return "closed";
    case channel_status::full:
      return "full";
    case channel_status::empty:
      return "empty";
    case channel_status::dropped:
      return "dropped";
  }
  return "unknown";
}

namespace internal {

uint64_t next_channel_id() noexcept {
  static std::atomic<uint64_t> next{0};
  return ++next;
}

} // namespace internal

} // namespace weave
