#pragma once

// A countdown that one coroutine can wait on, with a deadline: asyncio's `queue.join()`
// or `Event.wait()` for Asio 1.18, which has neither channels nor awaitable operators.
// A steady_timer serves as both the deadline and the wake-up: count_down() cancels it
// when the count reaches zero.
//
// Single-threaded: use it on the executor that waits on it. One waiter at a time.

#include <chrono>
#include <cstddef>

#include "tidings/asio.hpp"

namespace tidings::examples {

class async_latch {
 public:
  using clock = std::chrono::steady_clock;

  async_latch(asio::any_io_executor executor, std::size_t count)
      : timer_(std::move(executor)), count_(count) {}

  void count_down() {
    if (count_ == 0) return;
    if (--count_ == 0) timer_.cancel();
  }
  // Wakes the waiter now: the wait reports failure (for a fatal error elsewhere).
  void abort() {
    aborted_ = true;
    timer_.cancel();
  }

  std::size_t remaining() const noexcept { return count_; }

  // True once the count is zero; false at the deadline or after abort().
  asio::awaitable<bool> wait_until(clock::time_point deadline) {
    while (count_ > 0 && !aborted_) {
      if (clock::now() >= deadline) co_return false;
      timer_.expires_at(deadline);
      boost::system::error_code ignored;  // expiry and cancellation are both read from the state
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    co_return count_ == 0;
  }

 private:
  asio::steady_timer timer_;
  std::size_t count_;
  bool aborted_ = false;
};

}  // namespace tidings::examples
