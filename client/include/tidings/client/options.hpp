#pragma once

// Connection settings and callbacks.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "tidings/client/errors.hpp"

namespace tidings::client {

inline constexpr std::uint16_t default_port = 4700;

// How to retry after a lost connection (see reconnect_policy).
struct reconnect_settings {
  bool enabled = true;
  std::chrono::milliseconds initial_delay{50};
  std::chrono::milliseconds max_delay{5000};
  double multiplier = 2.0;
  // Each delay is drawn uniformly from [d * (1 - jitter), d * (1 + jitter)], so that
  // clients cut off together do not come back together.
  double jitter = 0.25;
  // Attempts after each loss before giving up (the connection is then closed);
  // nullopt: retry forever.
  std::optional<std::uint32_t> max_attempts;
};

struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = default_port;

  // Sent in `connect`.
  std::string name;
  std::optional<std::string> token;
  std::optional<std::string> user;
  std::optional<std::string> pass;
  bool echo = true;

  // TCP connect, `info` and the `connect` acknowledgement, per attempt.
  std::chrono::milliseconds connect_timeout{5000};
  // Our own pings, to notice a dead server; 0 disables them. After max_pings_out pings
  // with no frame at all from the server since the first of them (a pong or anything
  // else: a pong may wait behind a backlog of messages), the connection is treated as
  // lost (errc::server_unresponsive).
  std::chrono::milliseconds ping_interval{20000};
  std::uint32_t max_pings_out = 2;

  reconnect_settings reconnect;
  // Publishes made while reconnecting are kept, as whole frames, up to this many bytes;
  // beyond it publish fails with errc::reconnect_buffer_full.
  std::size_t reconnect_buffer_bytes = 8 * 1024 * 1024;
  // Unsent bytes while connected; beyond it publish fails with errc::outbound_full
  // (the blocking client waits instead).
  std::size_t max_outbound_bytes = 64 * 1024 * 1024;

  // Reply topics of requests are `<inbox_prefix>.<random>.<n>`.
  std::string inbox_prefix = "_INBOX";

  // Callbacks run on the connection's executor.
  // An `err` without `id` (or one no pending operation claims).
  std::function<void(const error&)> on_error;
  // The connection was lost; reconnection starts (when enabled).
  std::function<void(const error_code&)> on_disconnected;
  // A new connection is up and every subscription has been restored.
  std::function<void()> on_reconnected;
  // The connection is closed for good (close(), drain(), or reconnection gave up).
  std::function<void(const error_code&)> on_closed;
};

struct server_address {
  std::string host;
  std::uint16_t port = default_port;
};

// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; nullopt when malformed.
std::optional<server_address> parse_server_address(std::string_view text);

}  // namespace tidings::client
