#include "tidings/protocol/errors.hpp"

#include <array>

namespace tidings::protocol {
namespace {

struct error_info {
  std::string_view name;
  bool closes;
};

// Indexed by error_code; the order must match the enum.
constexpr std::array<error_info, error_code_count> errors{{
    {"bad_frame", true},
    {"frame_too_large", true},
    {"bad_json", false},
    {"unknown_op", false},
    {"bad_request", false},
    {"invalid_topic", false},
    {"no_responders", false},
    {"permission_denied", false},
    {"too_many_subscriptions", false},
    {"auth_required", true},
    {"auth_failed", true},
    {"slow_consumer", true},
    {"stale_connection", true},
    {"too_many_connections", true},
    {"shutting_down", true},
}};

static_assert(static_cast<std::size_t>(error_code::shutting_down) + 1 == error_code_count);

}  // namespace

std::string_view wire_name(error_code code) noexcept {
  return errors[static_cast<std::size_t>(code)].name;
}

std::optional<error_code> error_code_from_wire(std::string_view name) noexcept {
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (errors[i].name == name) return static_cast<error_code>(i);
  }
  return std::nullopt;
}

bool closes_connection(error_code code) noexcept {
  return errors[static_cast<std::size_t>(code)].closes;
}

}  // namespace tidings::protocol
