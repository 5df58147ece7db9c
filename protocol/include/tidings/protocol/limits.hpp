#pragma once

// Numeric limits fixed by PROTOCOL.md (the configurable ones have their defaults here).

#include <cstddef>
#include <cstdint>

namespace tidings::protocol {

inline constexpr std::uint32_t protocol_version = 1;

inline constexpr std::size_t frame_prefix_size = 4;
inline constexpr std::uint32_t min_frame_size = 2;  // the shortest JSON object: `{}`
inline constexpr std::uint32_t default_max_frame = 1024 * 1024;
// Server frames may exceed max_frame by the `msg` envelope.
inline constexpr std::uint32_t server_frame_allowance = 1024;

inline constexpr std::size_t max_topic_size = 256;
inline constexpr std::size_t max_queue_name_size = 64;
inline constexpr std::size_t max_string_id_size = 64;
// `connect.name`, in bytes once decoded: it appears in every log line about the connection.
inline constexpr std::size_t max_client_name_size = 128;
// Integers on the wire (sid, id, max) stay within what an IEEE double holds exactly.
inline constexpr std::uint64_t max_safe_integer = (std::uint64_t{1} << 53) - 1;
// The frame's own object is level 1.
inline constexpr int max_json_depth = 128;

}  // namespace tidings::protocol
