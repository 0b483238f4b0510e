#pragma once

// Internal: the answer to a `channel::send` whose item the channel accepted
// (see channel_sends.hpp).

#include "caf/allowed_unsafe_message_type.hpp"

namespace weave::internal {

struct send_accepted {};

} // namespace weave::internal

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(weave::internal::send_accepted)
