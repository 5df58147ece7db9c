#pragma once

#include <string_view>

namespace tidings::broker {

// Why a connection ended: every session records exactly one, logged once.
enum class close_reason {
  client_closed,         // orderly EOF from the client
  io_error,              // the socket failed (reset, broken pipe, ...)
  protocol_error,        // bad_frame or frame_too_large: framing is lost
  slow_consumer,         // max_pending passed or write_deadline missed
  stale_connection,      // pings unanswered
  too_many_connections,  // refused at the connection limit
  server_shutdown,       // graceful stop
  drain_timeout,         // graceful stop ran out of time for this client
};

constexpr std::string_view to_string(close_reason reason) noexcept {
  switch (reason) {
    case close_reason::client_closed:
      return "client_closed";
    case close_reason::io_error:
      return "io_error";
    case close_reason::protocol_error:
      return "protocol_error";
    case close_reason::slow_consumer:
      return "slow_consumer";
    case close_reason::stale_connection:
      return "stale_connection";
    case close_reason::too_many_connections:
      return "too_many_connections";
    case close_reason::server_shutdown:
      return "server_shutdown";
    case close_reason::drain_timeout:
      return "drain_timeout";
  }
  return "unknown";
}

}  // namespace tidings::broker
