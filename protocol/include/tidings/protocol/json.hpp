#pragma once

// A strict RFC 8259 scanner: validates without building a tree, so that the parser can
// keep every value as a view of its raw bytes and forward it without re-serializing.
//
// Strict means: only the four JSON whitespace characters; no BOM; strings of valid UTF-8
// (no overlong forms, no surrogates, nothing above U+10FFFF) without raw control
// characters; escapes limited to the ten of RFC 8259, and `\u` surrogate escapes only
// as a high-low pair (a lone surrogate is rejected, as I-JSON (RFC 7493) does, so every
// forwarded value is one that any receiver's JSON parser accepts). Nesting is counted
// without recursion, so a deep input cannot exhaust the stack.

#include <cstdint>
#include <string>
#include <string_view>

#include "tidings/protocol/limits.hpp"

namespace tidings::protocol::json {

enum class kind : std::uint8_t { object, array, string, number, boolean, null };

// Skips JSON whitespace from `p`; returns the first other position (or `end`).
const char* skip_whitespace(const char* p, const char* end) noexcept;

// Validates one value starting exactly at `p`. `depth` is the nesting level the value
// would open if it is an object or array (the frame's own object is level 1); a
// container opened beyond `max_depth` fails. Returns the position after the value, or
// nullptr when the value is invalid. `value_kind` receives the kind of the value.
const char* scan_value(const char* p, const char* end, int depth, kind& value_kind,
                       int max_depth = max_json_depth) noexcept;

// Validates a string starting at the opening quote `p`. Returns the position after the
// closing quote, or nullptr. `has_escapes` tells whether decode_string is needed.
const char* scan_string(const char* p, const char* end, bool& has_escapes) noexcept;

// Whether `text` is exactly one valid JSON value, surrounded only by whitespace.
bool is_valid(std::string_view text, int max_depth = max_json_depth) noexcept;

// Length of the valid UTF-8 sequence that starts `text` with a byte >= 0x80, or 0 when
// it is not one (the rules of scan_string).
std::size_t utf8_sequence_length(std::string_view text) noexcept;

// Decodes the contents of a valid string literal (between its quotes) into UTF-8.
// The input must have passed scan_string.
void decode_string(std::string_view escaped, std::string& out);

// Appends `text` (UTF-8) as a JSON string literal, quotes included.
void append_string(std::string& out, std::string_view text);

// Whether append_string would copy `text` verbatim (no `"`, `\` or control character).
bool needs_no_escaping(std::string_view text) noexcept;

}  // namespace tidings::protocol::json
