#pragma once

// spdlog set-up for the daemon: one line per event on stderr, as text or JSON lines.

#include <string>
#include <string_view>

#include "tidings/broker/config.hpp"

namespace tidings::broker {

// Throws std::invalid_argument for an unknown level.
void setup_logging(const std::string& level, log_format format);

// Client-supplied text as it may appear in a log line: control characters (C0, DEL and
// the C1 range, which terminals act on), `"` and `\` are written as escapes (`\n`,
// `\x1b`, `\u0085`, `\"`, `\\`), so that a client can neither forge log lines nor
// reach an operator's terminal. Other bytes pass unchanged. Quote the result with `"`.
std::string escape_for_log(std::string_view text);

}  // namespace tidings::broker
