#include "tidings/client/options.hpp"

#include <charconv>

namespace tidings::client {
namespace {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto* end = text.data() + text.size();
  const auto [next, failure] = std::from_chars(text.data(), end, value);
  if (text.empty() || failure != std::errc{} || next != end || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

}  // namespace

std::optional<server_address> parse_server_address(std::string_view text) {
  server_address address;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    address.host = std::string(text.substr(1, close - 1));
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port_text = rest.substr(1);
      if (port_text.empty()) return std::nullopt;
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon != std::string_view::npos) {
      // More than one colon without brackets is a bare IPv6 address: ambiguous with a port.
      if (text.find(':') != colon) return std::nullopt;
      port_text = text.substr(colon + 1);
      if (port_text.empty()) return std::nullopt;
      text = text.substr(0, colon);
    }
    address.host = std::string(text);
  }
  if (address.host.empty()) return std::nullopt;
  if (!port_text.empty()) {
    const auto port = parse_port(port_text);
    if (!port) return std::nullopt;
    address.port = *port;
  }
  return address;
}

}  // namespace tidings::client
