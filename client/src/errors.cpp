#include "tidings/client/errors.hpp"

#include <string>

namespace tidings::client {
namespace {

// boost::system::error_category has a protected non-virtual destructor by design:
// categories are static objects, never deleted through the base.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"

class client_error_category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "tidings.client"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::timeout:
        return "timed out";
      case errc::not_connected:
        return "not connected";
      case errc::disconnected:
        return "the connection was lost";
      case errc::closed:
        return "the connection is closed";
      case errc::reconnect_buffer_full:
        return "reconnect buffer full";
      case errc::outbound_full:
        return "outbound buffer full";
      case errc::server_unresponsive:
        return "the server does not answer pings";
      case errc::protocol_violation:
        return "the server broke the protocol";
      case errc::invalid_argument:
        return "invalid argument";
    }
    return "unknown tidings client error";
  }
};

class server_error_category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "tidings.server"; }
  std::string message(int value) const override {
    if (value <= 0 || static_cast<std::size_t>(value) > protocol::error_code_count) {
      return "unknown tidings server error";
    }
    return std::string(protocol::wire_name(static_cast<protocol::error_code>(value - 1)));
  }
};

#pragma GCC diagnostic pop

const client_error_category client_category_instance;
const server_error_category server_category_instance;

}  // namespace

const boost::system::error_category& client_category() noexcept {
  return client_category_instance;
}

const boost::system::error_category& server_category() noexcept {
  return server_category_instance;
}

error_code make_error_code(errc value) noexcept {
  return {static_cast<int>(value), client_category()};
}

error_code make_error_code(protocol::error_code value) noexcept {
  return {static_cast<int>(value) + 1, server_category()};
}

bool is_server_error(const error_code& ec) noexcept {
  return ec.category() == server_category();
}

protocol::error_code server_code(const error_code& ec) noexcept {
  return static_cast<protocol::error_code>(ec.value() - 1);
}

exception::exception(const error& failure)
    : boost::system::system_error(failure.code, failure.message),
      server_message_(failure.message) {}

}  // namespace tidings::client
