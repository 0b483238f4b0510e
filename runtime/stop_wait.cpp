#include "runtime/stop_wait.hpp"

namespace weave::internal {

bool sleep_until(const stop_token& tok, steady_clock::time_point tp) {
  if (tok.stop_requested())
    return false;
  std::mutex mtx;
  std::condition_variable cv;
  // Registered before the lock is taken, and deregistered after it is
  // released (declaration order), so the waker never waits for this thread.
  auto fired_here = false; // unused: the loop looks at the token itself
  stop_hook<cv_waker<std::mutex, std::condition_variable>> hook{
    cv_waker<std::mutex, std::condition_variable>{&mtx, &cv, &fired_here}};
  hook.attach(state_of(tok));
  std::unique_lock<std::mutex> lock{mtx};
  while (!tok.stop_requested()) {
    if (tp == steady_clock::time_point::max())
      cv.wait(lock);
    else if (cv.wait_until(lock, tp) == std::cv_status::timeout)
      return !tok.stop_requested();
  }
  return false;
}

} // namespace weave::internal
