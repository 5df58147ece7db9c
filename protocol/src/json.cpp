#include "tidings/protocol/json.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tidings::protocol::json {
namespace {

constexpr int depth_stack_size = 512;

inline bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads 4 hex digits at p (p + 4 <= end checked by the caller); -1 if not hex.
inline long read_hex4(const char* p) noexcept {
  long value = 0;
  for (int i = 0; i < 4; ++i) {
    const int digit = hex_value(p[i]);
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

inline unsigned char byte_at(const char* p) noexcept {
  return static_cast<unsigned char>(*p);
}

// Length of the valid UTF-8 sequence starting with a byte >= 0x80 at p, or 0. Rejects
// overlong forms, UTF-16 surrogates (ED A0..BF) and code points above U+10FFFF.
inline std::size_t utf8_sequence(const char* p, const char* end) noexcept {
  const unsigned char lead = byte_at(p);
  const auto left = static_cast<std::size_t>(end - p);
  auto continuation = [&](std::size_t i, unsigned char lo, unsigned char hi) {
    return i < left && byte_at(p + i) >= lo && byte_at(p + i) <= hi;
  };
  if (lead < 0xC2) return 0;
  if (lead < 0xE0) return continuation(1, 0x80, 0xBF) ? 2 : 0;
  if (lead < 0xF0) {
    const unsigned char lo = lead == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = lead == 0xED ? 0x9F : 0xBF;
    return continuation(1, lo, hi) && continuation(2, 0x80, 0xBF) ? 3 : 0;
  }
  if (lead < 0xF5) {
    const unsigned char lo = lead == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = lead == 0xF4 ? 0x8F : 0xBF;
    return continuation(1, lo, hi) && continuation(2, 0x80, 0xBF) && continuation(3, 0x80, 0xBF)
               ? 4
               : 0;
  }
  return 0;
}

// Position of the first byte at or after p that needs a look (quote, backslash, control
// character or non-ASCII), or end.
inline const char* find_special(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  // As signed bytes, both control characters (0..0x1F) and non-ASCII (0x80..0xFF, which
  // are negative) compare below 0x20.
  const __m128i space = _mm_set1_epi8(0x20);
  while (end - p >= 16) {
    const __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i hits =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(chunk, quote), _mm_cmpeq_epi8(chunk, backslash)),
                     _mm_cmplt_epi8(chunk, space));
    const int mask = _mm_movemask_epi8(hits);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (p < end) {
    const unsigned char c = byte_at(p);
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) return p;
    ++p;
  }
  return end;
}

// JSON whitespace is 0x20, 0x09, 0x0A, 0x0D; compact JSON has none between tokens, so
// the first test usually decides.
inline const char* skip_ws(const char* p, const char* end) noexcept {
  while (p < end && byte_at(p) <= ' ' && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    ++p;
  return p;
}

// The part of a string after its opening quote, from the first byte find_special
// stopped at: escapes, UTF-8 validation, the closing quote.
const char* scan_string_rest(const char* p, const char* end, bool& has_escapes) noexcept;

// Validates a string whose opening quote is at p. Plain ASCII strings, the vast majority
// of names and many values, finish with one vector scan and no call.
inline const char* scan_string_inline(const char* p, const char* end, bool& has_escapes) noexcept {
  p = find_special(p + 1, end);
  if (p < end && *p == '"') return p + 1;
  return scan_string_rest(p, end, has_escapes);
}

const char* scan_number(const char* p, const char* end) noexcept {
  if (p < end && *p == '-') ++p;
  if (p >= end) return nullptr;
  if (*p == '0') {
    ++p;
  } else if (*p >= '1' && *p <= '9') {
    while (p < end && is_digit(*p))
      ++p;
  } else {
    return nullptr;
  }
  if (p < end && *p == '.') {
    ++p;
    if (p >= end || !is_digit(*p)) return nullptr;
    while (p < end && is_digit(*p))
      ++p;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    if (p < end && (*p == '+' || *p == '-')) ++p;
    if (p >= end || !is_digit(*p)) return nullptr;
    while (p < end && is_digit(*p))
      ++p;
  }
  return p;
}

const char* scan_literal(const char* p, const char* end, std::string_view word) noexcept {
  if (static_cast<std::size_t>(end - p) < word.size()) return nullptr;
  if (std::memcmp(p, word.data(), word.size()) != 0) return nullptr;
  return p + word.size();
}

// Appends code point `cp` as UTF-8.
void append_utf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

namespace {

const char* scan_string_rest(const char* p, const char* end, bool& has_escapes) noexcept {
  for (;; p = find_special(p, end)) {
    if (p >= end) return nullptr;
    const unsigned char c = byte_at(p);
    if (c == '"') return p + 1;
    if (c == '\\') {
      has_escapes = true;
      if (end - p < 2) return nullptr;
      switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          p += 2;
          break;
        case 'u': {
          if (end - p < 6) return nullptr;
          const long unit = read_hex4(p + 2);
          if (unit < 0) return nullptr;
          p += 6;
          if (unit >= 0xDC00 && unit <= 0xDFFF) return nullptr;  // a lone low surrogate
          if (unit >= 0xD800 && unit <= 0xDBFF) {
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return nullptr;
            const long low = read_hex4(p + 2);
            if (low < 0xDC00 || low > 0xDFFF) return nullptr;
            p += 6;
          }
          break;
        }
        default:
          return nullptr;
      }
      continue;
    }
    if (c < 0x20) return nullptr;
    const std::size_t length = utf8_sequence(p, end);
    if (length == 0) return nullptr;
    p += length;
  }
}

}  // namespace

const char* skip_whitespace(const char* p, const char* end) noexcept {
  return skip_ws(p, end);
}

const char* scan_string(const char* p, const char* end, bool& has_escapes) noexcept {
  if (p >= end || *p != '"') return nullptr;
  return scan_string_inline(p, end, has_escapes);
}

const char* scan_value(const char* p, const char* end, int depth, kind& value_kind,
                       int max_depth) noexcept {
  // One bit per open container (set: object), so nesting costs no recursion.
  std::array<std::uint64_t, depth_stack_size / 64> object_bits{};
  auto is_object = [&](int level) {
    const auto index = static_cast<std::size_t>(level);
    return ((object_bits[index / 64] >> (index % 64)) & 1U) != 0;
  };
  max_depth = std::min(max_depth, depth + depth_stack_size - 1);
  int open = 0;
  bool first = true;
  bool escapes = false;

value:
  if (p >= end) return nullptr;
  switch (*p) {
    case '{':
    case '[': {
      if (depth + open > max_depth) return nullptr;
      const bool object = *p == '{';
      if (first) value_kind = object ? kind::object : kind::array;
      first = false;
      {
        const auto index = static_cast<std::size_t>(open++);
        const std::uint64_t bit = std::uint64_t{1} << (index % 64);
        object_bits[index / 64] =
            object ? (object_bits[index / 64] | bit) : (object_bits[index / 64] & ~bit);
      }
      p = skip_ws(p + 1, end);
      if (p >= end) return nullptr;
      if (*p == (object ? '}' : ']')) {
        ++p;
        --open;
        goto after_value;
      }
      if (object) goto member_name;
      goto value;
    }
    case '"':
      if (first) value_kind = kind::string;
      p = scan_string_inline(p, end, escapes);
      break;
    case 't':
      if (first) value_kind = kind::boolean;
      p = scan_literal(p, end, "true");
      break;
    case 'f':
      if (first) value_kind = kind::boolean;
      p = scan_literal(p, end, "false");
      break;
    case 'n':
      if (first) value_kind = kind::null;
      p = scan_literal(p, end, "null");
      break;
    default:
      if (first) value_kind = kind::number;
      p = scan_number(p, end);
      break;
  }
  first = false;
  if (p == nullptr) return nullptr;

after_value:
  if (open == 0) return p;
  p = skip_ws(p, end);
  if (p >= end) return nullptr;
  if (*p == ',') {
    p = skip_ws(p + 1, end);
    if (is_object(open - 1)) goto member_name;
    goto value;
  }
  if (*p == (is_object(open - 1) ? '}' : ']')) {
    ++p;
    --open;
    goto after_value;
  }
  return nullptr;

member_name:
  if (p >= end || *p != '"') return nullptr;
  p = scan_string_inline(p, end, escapes);
  if (p == nullptr) return nullptr;
  p = skip_ws(p, end);
  if (p >= end || *p != ':') return nullptr;
  p = skip_ws(p + 1, end);
  goto value;
}

std::size_t utf8_sequence_length(std::string_view text) noexcept {
  return text.empty() ? 0 : utf8_sequence(text.data(), text.data() + text.size());
}

bool is_valid(std::string_view text, int max_depth) noexcept {
  const char* const end = text.data() + text.size();
  const char* p = skip_ws(text.data(), end);
  kind k{};
  p = scan_value(p, end, 1, k, max_depth);
  return p != nullptr && skip_ws(p, end) == end;
}

void decode_string(std::string_view escaped, std::string& out) {
  out.clear();
  out.reserve(escaped.size());
  const char* p = escaped.data();
  const char* const end = p + escaped.size();
  while (p < end) {
    const char* const backslash =
        static_cast<const char*>(std::memchr(p, '\\', static_cast<std::size_t>(end - p)));
    if (backslash == nullptr) {
      out.append(p, end);
      return;
    }
    out.append(p, backslash);
    p = backslash + 1;
    switch (*p) {
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        unsigned long cp = static_cast<unsigned long>(read_hex4(p + 1));
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          const auto low = static_cast<unsigned long>(read_hex4(p + 3));
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          p += 6;
        }
        append_utf8(out, cp);
        break;
      }
      default:  // " \ /
        out.push_back(*p);
        break;
    }
    ++p;
  }
}

bool needs_no_escaping(std::string_view text) noexcept {
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u == '"' || u == '\\' || u < 0x20) return false;
  }
  return true;
}

void append_string(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run_start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto u = static_cast<unsigned char>(text[i]);
    if (u != '"' && u != '\\' && u >= 0x20) continue;
    out.append(text, run_start, i - run_start);
    run_start = i + 1;
    switch (u) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out.push_back(hex[u >> 4]);
        out.push_back(hex[u & 0xF]);
        break;
    }
  }
  out.append(text, run_start, text.size() - run_start);
  out.push_back('"');
}

}  // namespace tidings::protocol::json
