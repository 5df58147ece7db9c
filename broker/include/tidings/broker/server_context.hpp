#pragma once

// What every session shares with the server: settings, the index, counters, and the
// hooks it calls when it ends.

#include <algorithm>
#include <atomic>
#include <chrono>
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
  explicit server_context(const config& c)
      : settings(c), sweep_interval(sweep_interval_for(c)), index(index_options_for(c)) {}

  // How often each loop runs its sessions' periodic duties (pings, write deadline, linger):
  // often enough for the shortest of them, and at least 4 times a second so the linger
  // after a framing error ends within its second.
  static std::chrono::milliseconds sweep_interval_for(const config& c) {
    auto shortest = c.write_deadline;
    if (c.ping_interval.count() > 0) shortest = std::min(shortest, c.ping_interval);
    return std::clamp(shortest / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(250));
  }

  static subscription_index::options index_options_for(const config& c) {
    subscription_index::options opts;
    opts.cache_enabled = c.match_cache > 0;
    opts.cache_max_bytes = static_cast<std::size_t>(c.match_cache);
    return opts;
  }

  const config settings;
  const std::chrono::milliseconds sweep_interval;
  subscription_index index;
  server_stats stats;
  std::atomic<std::uint32_t> active_connections{0};
  std::atomic<std::uint64_t> next_client_id{1};
  // Called on a session's loop when it has fully closed (after unregistering).
  std::function<void()> on_session_closed;
};

}  // namespace tidings::broker
