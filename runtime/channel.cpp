#include "runtime/channel.hpp"

#include <algorithm>
#include <atomic>

#include "caf/abstract_actor.hpp"
#include "caf/mailbox_element.hpp"
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
    case channel_status::stopped:
      return "stopped";
  }
  return "unknown";
}

namespace internal {

namespace {

/// The messages of the outermost `deliver` running on this thread, if any.
thread_local channel_outbox* tl_delivering = nullptr;

/// Set while a message that could not be sent is destroyed.
thread_local bool tl_delivery_failed = false;

/// How many times `send_one` tries to allocate a mailbox element.
constexpr int send_attempts = 2;

/// Sends `msg` to `dest`. If the mailbox element cannot be allocated (twice:
/// a passing shortage does not lose an end-of-stream), `msg` is destroyed
/// with `tl_delivery_failed` set (see channel_delivery.hpp).
void send_one(caf::strong_actor_ptr& dest, caf::message& msg,
              caf::message_id id) noexcept {
  caf::mailbox_element_ptr elem;
  for (int attempt = 1; elem == nullptr; ++attempt) {
    try {
      // From a copy: `msg` keeps the content if this throws.
      elem = caf::make_mailbox_element(nullptr, id, {}, msg);
    } catch (...) {
      if (attempt < send_attempts)
        continue;
      tl_delivery_failed = true;
      msg = caf::message{};
      tl_delivery_failed = false;
      return;
    }
  }
  // The element holds the only reference, so that the handler's mutable
  // access to the content does not copy it.
  msg = caf::message{};
  try {
    dest->enqueue(std::move(elem), nullptr);
  } catch (...) {
    // The element is in the mailbox or gone with its content (a batch
    // destroyed that way counts as unread by a live subscriber): nothing
    // more to do here.
  }
}

/// Grows `xs` for `n` more entries, geometrically.
void make_room(channel_outbox& xs, size_t n) {
  auto needed = xs.size() + n;
  if (needed > xs.capacity())
    xs.reserve(std::max(needed, 2 * xs.capacity()));
}

} // namespace

void deliver_now(channel_outbox& out) noexcept {
  if (tl_delivering != nullptr) {
    // Nested (a message died at once and handed a batch back): the
    // outermost call sends these after the ones it already holds.
    try {
      make_room(*tl_delivering, out.size());
    } catch (...) {
      // Out of memory: send them from here.
      for (auto& x : out)
        send_one(x.dest, x.msg, x.id);
      out.clear();
      return;
    }
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
    auto dest = std::move(pending[i].dest);
    auto msg = std::move(pending[i].msg);
    send_one(dest, msg, pending[i].id);
  }
}

bool delivery_failed() noexcept {
  return tl_delivery_failed;
}

uint64_t next_channel_id() noexcept {
  static std::atomic<uint64_t> next{0};
  return ++next;
}

} // namespace internal

} // namespace weave
