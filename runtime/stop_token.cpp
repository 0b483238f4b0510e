#include "runtime/stop_token.hpp"

#include <string>

namespace weave {

namespace internal {

// -- stop_callback_node -------------------------------------------------------

void stop_callback_node::attach(stop_state* st) {
  if (st == nullptr)
    return;
  state_.reset(st);
  {
    std::unique_lock<std::mutex> guard{st->mtx_};
    if (!st->stop_requested()) {
      next_ = st->head_;
      prev_ = nullptr;
      if (next_ != nullptr)
        next_->prev_ = this;
      st->head_ = this;
      linked_ = true;
      return;
    }
  }
  // Stopped before: run now, on this thread, without the lock.
  invoke_(this);
}

void stop_callback_node::detach() noexcept {
  if (!state_)
    return;
  auto& st = *state_;
  {
    std::unique_lock<std::mutex> guard{st.mtx_};
    if (linked_) {
      st.unlink(this);
    } else if (st.running_ == this) {
      if (st.stopping_thread_ == std::this_thread::get_id())
        st.running_ = nullptr; // the callback destroys itself: forget it
      else
        st.done_.wait(guard, [&st, this] { return st.running_ != this; });
    }
  }
  state_.reset(); // after the lock: this may be the last reference
}

bool stop_callback_node::try_detach() noexcept {
  if (!state_)
    return true;
  auto& st = *state_;
  {
    std::unique_lock<std::mutex> guard{st.mtx_};
    if (linked_) {
      st.unlink(this);
    } else if (st.running_ == this) {
      if (st.stopping_thread_ != std::this_thread::get_id())
        return false;
      st.running_ = nullptr;
    }
  }
  state_.reset();
  return true;
}

// -- stop_state ---------------------------------------------------------------

void stop_state::unlink(stop_callback_node* node) noexcept {
  if (node->prev_ != nullptr)
    node->prev_->next_ = node->next_;
  else
    head_ = node->next_;
  if (node->next_ != nullptr)
    node->next_->prev_ = node->prev_;
  node->prev_ = nullptr;
  node->next_ = nullptr;
  node->linked_ = false;
}

bool stop_state::request_stop(errc cause) noexcept {
  std::unique_lock<std::mutex> guard{mtx_};
  if (cause_.load(std::memory_order_relaxed) != 0)
    return false;
  stopping_thread_ = std::this_thread::get_id();
  cause_.store(static_cast<uint8_t>(cause), std::memory_order_release);
  while (head_ != nullptr) {
    auto* node = head_;
    unlink(node);
    running_ = node;
    guard.unlock();
    // User code: never under the lock. Once it returned, `node` may be gone
    // (a callback may destroy its own stop_callback).
    node->invoke_(node);
    guard.lock();
    running_ = nullptr;
    done_.notify_all();
  }
  return true;
}

} // namespace internal

// -- stop_token ---------------------------------------------------------------

caf::error stop_token::error() const {
  return internal::stop_error(cause(), "stop requested");
}

// -- stop_source --------------------------------------------------------------

stop_source::stop_source()
  : state_(caf::make_counted<internal::counted_stop_state>()) {
  state_->add_source();
}

stop_source::stop_source(const stop_source& other) noexcept
  : state_(other.state_) {
  if (state_)
    state_->add_source();
}

stop_source& stop_source::operator=(const stop_source& other) noexcept {
  if (this != &other) {
    stop_source tmp{other};
    swap(tmp);
  }
  return *this;
}

stop_source& stop_source::operator=(stop_source&& other) noexcept {
  if (this != &other) {
    stop_source tmp{std::move(other)};
    swap(tmp);
  }
  return *this;
}

stop_source::~stop_source() {
  if (state_)
    state_->release_source();
}

bool stop_source::request_stop(errc cause) {
  if (cause == errc{})
    raise(make_error(errc::invalid_argument,
                     "stop_source::request_stop: the cause must be an error "
                     "code, not errc{}"));
  if (!state_)
    return false;
  // A callback may destroy this source (and every other reference).
  auto keep = state_;
  return keep->request_stop(cause);
}

caf::error stop_source::error() const {
  return internal::stop_error(cause(), "stop requested");
}

namespace internal {

caf::error stop_error(errc cause, const char* what) {
  if (cause == errc{})
    return caf::error{};
  return make_error(cause, what);
}

} // namespace internal

} // namespace weave
