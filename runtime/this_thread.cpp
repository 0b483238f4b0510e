#include "runtime/this_thread.hpp"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "caf/logger.hpp"

#include "runtime/internal/thread_activity.hpp"
#include "runtime/internal/thread_roles.hpp"

namespace weave {

namespace {

thread_local std::string tl_name;
thread_local bool tl_must_not_block = false;

} // namespace

std::string this_thread_name() {
  if (!tl_name.empty())
    return tl_name;
  if (::syscall(SYS_gettid) == ::getpid())
    return "main";
  char buf[16] = {};
  if (pthread_getname_np(pthread_self(), buf, sizeof(buf)) == 0 && buf[0] != 0)
    return buf;
  return "thread";
}

void set_this_thread_name(std::string name) {
  // The kernel keeps 15 characters; keep the tail, which holds the index.
  auto os_name = name.size() > 15 ? name.substr(name.size() - 15) : name;
  pthread_setname_np(pthread_self(), os_name.c_str());
  internal::rename_thread_activity(name);
  tl_name = std::move(name);
}

bool this_thread_must_not_block() noexcept {
  return tl_must_not_block;
}

void release_this_thread() noexcept {
  // CAF's scheduler and clock threads, and loops, keep theirs: they let go
  // when they end, and CAF's logging on them needs it until then.
  if (tl_must_not_block)
    return;
  if (caf::logger::current_logger() != nullptr)
    caf::logger::set_current_actor_system(nullptr);
}

namespace internal {

void set_this_thread_must_not_block(bool value) noexcept {
  tl_must_not_block = value;
}

std::string this_thread_os_name() {
  char buf[16] = {};
  pthread_getname_np(pthread_self(), buf, sizeof(buf));
  return buf;
}

} // namespace internal

} // namespace weave
