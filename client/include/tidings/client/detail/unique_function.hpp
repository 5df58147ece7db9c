#pragma once

// A move-only std::function: completion handlers (coroutine continuations among them)
// cannot be copied. std::move_only_function is C++23.

#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

namespace tidings::client::detail {

template <class Signature>
class unique_function;

template <class R, class... Args>
class unique_function<R(Args...)> {
 public:
  unique_function() = default;
  unique_function(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, unique_function>>>
  unique_function(F&& function)  // NOLINT(google-explicit-constructor): like std::function
      : callable_(std::make_unique<holder<std::decay_t<F>>>(std::forward<F>(function))) {}

  explicit operator bool() const noexcept { return callable_ != nullptr; }

  R operator()(Args... args) { return callable_->call(std::forward<Args>(args)...); }

 private:
  struct callable {
    virtual ~callable() = default;
    virtual R call(Args... args) = 0;
  };
  template <class F>
  struct holder final : callable {
    explicit holder(F&& function) : stored(std::move(function)) {}
    explicit holder(const F& function) : stored(function) {}
    R call(Args... args) override { return stored(std::forward<Args>(args)...); }
    F stored;
  };

  std::unique_ptr<callable> callable_;
};

}  // namespace tidings::client::detail
