#pragma once

// Topics and subscription patterns (PROTOCOL.md section 5).
//
// A topic is 1..256 bytes of `.`-separated, non-empty tokens of printable ASCII other
// than `.`, `*` and `>`. A pattern may use `*` as a whole token and `>` as the whole
// last token. Wildcards in the first token never match topics that begin with `$`.

#include <string_view>

namespace tidings::protocol {

inline constexpr std::string_view inbox_prefix = "_INBOX.";

// A concrete topic, as `pub.topic` and `pub.reply` require.
bool is_valid_topic(std::string_view topic) noexcept;

// A subscription pattern (every valid topic is also a valid pattern).
bool is_valid_pattern(std::string_view pattern) noexcept;

// Whether the pattern has a `*` or `>` token.
bool has_wildcard(std::string_view pattern) noexcept;

// Topics beginning with `$` belong to the server: clients may not publish to them.
constexpr bool is_reserved_topic(std::string_view topic) noexcept {
  return !topic.empty() && topic.front() == '$';
}

// 1..64 bytes of printable ASCII without spaces (0x21..0x7E).
bool is_valid_queue_name(std::string_view queue) noexcept;

// Both arguments must be valid (pattern and concrete topic); the result is
// unspecified otherwise.
bool pattern_matches(std::string_view pattern, std::string_view topic) noexcept;

// Splits `a.b.c` into its tokens without allocating.
class token_reader {
 public:
  explicit constexpr token_reader(std::string_view text) noexcept : rest_(text) {}

  // Stores the next token into `token`; false when none is left.
  constexpr bool next(std::string_view& token) noexcept {
    if (done_) return false;
    const auto dot = rest_.find('.');
    if (dot == std::string_view::npos) {
      token = rest_;
      done_ = true;
    } else {
      token = rest_.substr(0, dot);
      rest_.remove_prefix(dot + 1);
    }
    return true;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

}  // namespace tidings::protocol
