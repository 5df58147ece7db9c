#include "tidings/protocol/topic.hpp"

#include "tidings/protocol/limits.hpp"

namespace tidings::protocol {
namespace {

constexpr bool is_token_char(char c) noexcept {
  return c >= 0x21 && c <= 0x7E && c != '.' && c != '*' && c != '>';
}

// Validates the shared shape of topics and patterns in one pass.
bool check(std::string_view text, bool allow_wildcards) noexcept {
  if (text.empty() || text.size() > max_topic_size) return false;
  std::size_t token_start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] != '.') continue;
    const std::string_view token = text.substr(token_start, i - token_start);
    if (token.empty()) return false;
    const bool is_last = i == text.size();
    if (token.size() == 1 && (token[0] == '*' || token[0] == '>')) {
      if (!allow_wildcards) return false;
      if (token[0] == '>' && !is_last) return false;
    } else {
      for (const char c : token) {
        if (!is_token_char(c)) return false;
      }
    }
    token_start = i + 1;
  }
  return true;
}

}  // namespace

bool is_valid_topic(std::string_view topic) noexcept {
  return check(topic, false);
}

bool is_valid_pattern(std::string_view pattern) noexcept {
  return check(pattern, true);
}

bool has_wildcard(std::string_view pattern) noexcept {
  token_reader tokens(pattern);
  std::string_view token;
  while (tokens.next(token)) {
    if (token == "*" || token == ">") return true;
  }
  return false;
}

bool is_valid_queue_name(std::string_view queue) noexcept {
  if (queue.empty() || queue.size() > max_queue_name_size) return false;
  for (const char c : queue) {
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}

bool pattern_matches(std::string_view pattern, std::string_view topic) noexcept {
  // A wildcard in the first token does not reach the server's `$` topics.
  if (is_reserved_topic(topic) && (pattern.starts_with('*') || pattern.starts_with('>'))) {
    if (pattern.size() == 1 || pattern[1] == '.') return false;
  }
  token_reader pattern_tokens(pattern);
  token_reader topic_tokens(topic);
  std::string_view p;
  std::string_view t;
  while (pattern_tokens.next(p)) {
    if (p == ">") return topic_tokens.next(t);  // one or more remaining tokens
    if (!topic_tokens.next(t)) return false;
    if (p != "*" && p != t) return false;
  }
  return !topic_tokens.next(t);
}

}  // namespace tidings::protocol
