#pragma once

// What every session shares with the server: settings, the index, counters, and the
// hooks it calls when it ends.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "tidings/broker/config.hpp"
#include "tidings/broker/subscription_index.hpp"

namespace tidings::broker {

// Process-wide statistics, updated with relaxed atomics.
struct server_stats {
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> connections_refused{0};
  std::atomic<std::uint64_t> messages_dropped{0};  // slow-consumer policy `drop`
  std::atomic<std::uint64_t> slow_consumers{0};    // connections closed as slow
};

struct server_context {
  explicit server_context(const config& c) : settings(c) {}

  const config settings;
  subscription_index index;
  server_stats stats;
  std::atomic<std::uint32_t> active_connections{0};
  std::atomic<std::uint64_t> next_client_id{1};
  // Called on a session's loop when it has fully closed (after unregistering).
  std::function<void()> on_session_closed;
};

}  // namespace tidings::broker
