#pragma once

// spdlog set-up for the daemon: one line per event on stderr, as text or JSON lines.

#include <string>

#include "tidings/broker/config.hpp"

namespace tidings::broker {

// Throws std::invalid_argument for an unknown level.
void setup_logging(const std::string& level, log_format format);

}  // namespace tidings::broker
