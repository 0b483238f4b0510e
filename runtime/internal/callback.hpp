#pragma once

// Internal: a move-only `void()` callable (std::function needs copyable
// targets), used for continuations.

#include <memory>
#include <utility>

namespace weave::internal {

class callback {
public:
  callback() = default;

  template <class F>
  explicit callback(F f) : impl_(new model<F>(std::move(f))) {
    // nop
  }

  explicit operator bool() const noexcept {
    return impl_ != nullptr;
  }

  void operator()() {
    impl_->call();
  }

private:
  struct concept_t {
    virtual ~concept_t() = default;
    virtual void call() = 0;
  };

  template <class F>
  struct model final : concept_t {
    explicit model(F f) : fn(std::move(f)) {
    }
    void call() override {
      fn();
    }
    F fn;
  };

  std::unique_ptr<concept_t> impl_;
};

} // namespace weave::internal
