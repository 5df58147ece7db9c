#pragma once

// Errors of the client library.
//
// Two categories: the server's codes of PROTOCOL.md section 8 (also used when the
// library refuses something locally for the reason the server would give, such as an
// invalid topic or a frame above max_frame), and the client's own conditions (timeouts,
// lost connections, full buffers). The asynchronous API reports a
// boost::system::error_code; the blocking API throws tidings::client::exception, which
// also carries the server's human-readable message.

#include <string>
#include <system_error>
#include <type_traits>

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include "tidings/protocol/errors.hpp"

namespace tidings::client {

using error_code = boost::system::error_code;

enum class errc {
  timeout = 1,            // no answer within the caller's timeout
  not_connected,          // the connection was never established (call async_connect)
  disconnected,           // the connection broke while the operation was in flight
  closed,                 // the connection was closed (close(), drain() or reconnects gave up)
  reconnect_buffer_full,  // disconnected, and the publish would pass reconnect_buffer_bytes
  outbound_full,          // connected, and the publish would pass max_outbound_bytes
  server_unresponsive,    // the server left max_pings_out of our pings unanswered
  protocol_violation,     // the server sent something PROTOCOL.md does not allow
  invalid_argument,       // a bad argument that the server never sees (e.g. an empty handler)
};

const boost::system::error_category& client_category() noexcept;
const boost::system::error_category& server_category() noexcept;

error_code make_error_code(errc value) noexcept;
// The server's codes are stored as value + 1, so that 0 stays "no error".
error_code make_error_code(protocol::error_code value) noexcept;

// The server's code carried by `ec`, if it is one.
bool is_server_error(const error_code& ec) noexcept;
protocol::error_code server_code(const error_code& ec) noexcept;

// An error with the server's message (or the library's, for local errors).
struct error {
  error_code code;
  std::string message;

  explicit operator bool() const noexcept { return static_cast<bool>(code); }
};

// Thrown by the blocking API.
class exception : public boost::system::system_error {
 public:
  explicit exception(const error& failure);
  // The server's human text (empty for purely local errors).
  const std::string& server_message() const noexcept { return server_message_; }

 private:
  std::string server_message_;
};

}  // namespace tidings::client

namespace boost::system {
template <>
struct is_error_code_enum<tidings::client::errc> : std::true_type {};
}  // namespace boost::system
