#pragma once

// When to try again after a lost connection: exponential backoff with jitter.
// Pure (no I/O, no clock): the connection asks it for each delay and tells it when an
// attempt succeeded, so it can be tested on its own.

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

#include "tidings/client/options.hpp"

namespace tidings::client {

class reconnect_policy {
 public:
  explicit reconnect_policy(reconnect_settings settings,
                            std::uint64_t seed = std::random_device{}());

  // The wait before the next attempt, or nullopt when the attempts are used up (or
  // reconnection is disabled). Attempt n (from 0) waits about
  // min(initial_delay * multiplier^n, max_delay), jittered and never above max_delay.
  std::optional<std::chrono::milliseconds> next_delay();

  // A connection was established: the next loss starts again from initial_delay.
  void reset() noexcept { attempts_ = 0; }

  std::uint32_t attempts() const noexcept { return attempts_; }
  const reconnect_settings& settings() const noexcept { return settings_; }

 private:
  reconnect_settings settings_;
  std::mt19937_64 random_;
  std::uint32_t attempts_ = 0;
};

}  // namespace tidings::client
