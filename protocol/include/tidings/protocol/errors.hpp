#pragma once

// The error codes of PROTOCOL.md section 8, with their wire names.

#include <cstdint>
#include <optional>
#include <string_view>

namespace tidings::protocol {

enum class error_code : std::uint8_t {
  bad_frame,               // length prefix below 2; closes
  frame_too_large,         // length prefix above max_frame; closes
  bad_json,                // body is not a JSON object with a string `op`; stays open
  unknown_op,              // `op` is not one of section 3; stays open
  bad_request,             // field missing, of the wrong type or format; stays open
  invalid_topic,           // topic or pattern breaks section 5; stays open
  no_responders,           // a request reached no subscription; stays open
  permission_denied,       // publish or subscribe not allowed; stays open
  too_many_subscriptions,  // per-connection subscription limit; stays open
  auth_required,           // first frame was not `connect`, or none in time; closes
  auth_failed,             // bad credentials; closes
  slow_consumer,           // outbound backlog or write deadline exceeded; closes
  stale_connection,        // too many unanswered server pings; closes
  too_many_connections,    // server at its connection limit; closes
  shutting_down,           // graceful shutdown; closes after the drain
};

inline constexpr std::size_t error_code_count = 15;

// The `code` string carried by an `err` frame.
std::string_view wire_name(error_code code) noexcept;

// The inverse of wire_name; nullopt for a code this version does not know.
std::optional<error_code> error_code_from_wire(std::string_view name) noexcept;

// Whether the server closes the connection after sending this error.
bool closes_connection(error_code code) noexcept;

}  // namespace tidings::protocol
