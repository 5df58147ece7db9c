#pragma once

// Turns a subscription's message handler (a callback, pushed to) into something a
// coroutine pulls from: `while (auto m = co_await channel.receive()) ...`, the shape of
// an asyncio worker's `await queue.get()`. Asio 1.18 has no channels; a steady_timer
// parked at time_point::max() is the consumer's wake-up.
//
// Single-threaded: push from handlers on the executor the consumer runs on. One
// consumer.

#include <chrono>
#include <deque>
#include <optional>
#include <utility>

#include "tidings/asio.hpp"
#include "tidings/client/message.hpp"

namespace tidings::examples {

class message_channel {
 public:
  explicit message_channel(asio::any_io_executor executor)
      : wakeup_(std::move(executor), asio::steady_timer::time_point::max()) {}

  // After close() pushes are dropped: the consumer has said it is done.
  void push(client::message item) {
    if (closed_) return;
    queue_.push_back(std::move(item));
    wakeup_.cancel();
  }
  // The consumer gets what is queued, then nullopt.
  void close() {
    closed_ = true;
    wakeup_.cancel();
  }

  asio::awaitable<std::optional<client::message>> receive() {
    while (queue_.empty() && !closed_) {
      boost::system::error_code ignored;  // only cancellation ends the wait
      co_await wakeup_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    if (queue_.empty()) co_return std::nullopt;
    auto item = std::move(queue_.front());
    queue_.pop_front();
    co_return item;
  }

  std::size_t size() const noexcept { return queue_.size(); }

 private:
  asio::steady_timer wakeup_;
  std::deque<client::message> queue_;
  bool closed_ = false;
};

}  // namespace tidings::examples
