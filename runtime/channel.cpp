#include "runtime/channel.hpp"

#include <atomic>

#include "caf/abstract_actor.hpp"
#include "caf/message_id.hpp"

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

namespace {

/// The messages of the outermost `deliver` running on this thread, if any.
thread_local channel_outbox* tl_delivering = nullptr;

} // namespace

void deliver_now(channel_outbox& out) {
  if (tl_delivering != nullptr) {
    // Nested (a message died at once and handed a batch back): the
    // outermost call sends these after the ones it already holds.
    for (auto& x : out)
      tl_delivering->emplace_back(std::move(x));
    out.clear();
    return;
  }
  channel_outbox pending;
  pending.swap(out);
  tl_delivering = &pending;
  struct reset {
    ~reset() {
      tl_delivering = nullptr;
    }
  } resetter;
  // `pending` may grow while we send: index, and move each entry out first.
  for (size_t i = 0; i < pending.size(); ++i) {
    auto dest = std::move(pending[i].first);
    auto msg = std::move(pending[i].second);
    dest->enqueue(nullptr, caf::make_message_id(), std::move(msg), nullptr);
  }
}

uint64_t next_channel_id() noexcept {
  static std::atomic<uint64_t> next{0};
  return ++next;
}

} // namespace internal

} // namespace weave
