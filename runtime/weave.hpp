#pragma once

/// weave: one include for the whole public surface.

#include "runtime/blocking_pool.hpp"
#include "runtime/channel.hpp"
#include "runtime/completion_queue.hpp"
#include "runtime/deadline_scope.hpp"
#include "runtime/error.hpp"
#include "runtime/future.hpp"
#include "runtime/loop.hpp"
#include "runtime/offload.hpp"
#include "runtime/runtime.hpp"
#include "runtime/runtime_config.hpp"
#include "runtime/shutdown_report.hpp"
#include "runtime/slow_handler_event.hpp"
#include "runtime/spawn_blocker.hpp"
#include "runtime/stop_token.hpp"
#include "runtime/stop_wait.hpp"
#include "runtime/supervised_blocker.hpp"
#include "runtime/this_thread.hpp"
#include "runtime/thread_census.hpp"
#include "runtime/when_all.hpp"
#include "runtime/when_any.hpp"
