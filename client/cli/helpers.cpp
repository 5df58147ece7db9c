#include "helpers.hpp"

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "tidings/protocol/json.hpp"
#include "tidings/protocol/limits.hpp"

namespace tidings::cli {
namespace {

std::string in_quotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

// Leading decimal digits of `text` as a number; `length` is 0 when there are none.
struct leading_digits {
  std::uint64_t value = 0;
  std::size_t length = 0;
  bool overflow = false;
};

leading_digits read_digits(std::string_view text) noexcept {
  leading_digits result;
  while (result.length < text.size() && is_digit(text[result.length])) {
    const auto digit = static_cast<std::uint64_t>(text[result.length] - '0');
    if (result.value > (UINT64_MAX - digit) / 10) result.overflow = true;
    if (!result.overflow) result.value = result.value * 10 + digit;
    ++result.length;
  }
  return result;
}

constexpr std::string_view duration_hint = "e.g. 500ms, 5s, 1.5s, 2m; units us, ms, s, m, h";

// Line breaks are whitespace wherever raw JSON may contain them (inside a string they
// must be escaped), so replacing them keeps the value and puts it on one line.
void append_on_one_line(std::string& out, std::string_view json) {
  if (json.empty()) {
    out += "null";
    return;
  }
  const auto start = out.size();
  out.append(json);
  std::replace_if(
      out.begin() + static_cast<std::ptrdiff_t>(start), out.end(),
      [](char c) { return c == '\n' || c == '\r'; }, ' ');
}

std::string format_fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

}  // namespace

std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what) {
  const auto fail = [&](const std::string& why) -> failure {
    return usage_error(std::string(what) + ": " + in_quotes(text) + " " + why);
  };
  const auto whole = read_digits(text);
  if (whole.length == 0)
    throw fail(std::string("is not a duration (") + duration_hint.data() + ")");
  auto rest = text.substr(whole.length);
  std::uint64_t fraction = 0;
  std::uint64_t fraction_scale = 1;
  if (!rest.empty() && rest.front() == '.') {
    const auto digits = read_digits(rest.substr(1));
    if (digits.length == 0 || digits.length > 9) {
      throw fail("is not a duration (at most 9 decimals; " + std::string(duration_hint) + ")");
    }
    fraction = digits.value;
    for (std::size_t i = 0; i < digits.length; ++i)
      fraction_scale *= 10;
    rest = rest.substr(1 + digits.length);
  }
  if (rest.empty()) {
    if (!whole.overflow && whole.value == 0 && fraction == 0) return std::chrono::milliseconds{0};
    throw fail("has no unit (" + std::string(duration_hint) + ")");
  }
  std::uint64_t unit_us = 0;
  if (rest == "us") unit_us = 1;
  if (rest == "ms") unit_us = 1'000;
  if (rest == "s") unit_us = 1'000'000;
  if (rest == "m") unit_us = 60'000'000;
  if (rest == "h") unit_us = 3'600'000'000;
  if (unit_us == 0) {
    throw fail("has an unknown unit " + in_quotes(rest) + " (" + std::string(duration_hint) + ")");
  }
  // About 31 years: far beyond any sensible timeout, and far from overflowing.
  constexpr std::uint64_t max_us = 1'000'000'000'000'000;
  if (whole.overflow || whole.value > max_us / unit_us) throw fail("is too large");
  // fraction < 10^9 and unit_us <= 3.6 * 10^9: the product fits in 64 bits.
  const std::uint64_t fraction_us = (fraction * unit_us + fraction_scale - 1) / fraction_scale;
  const std::uint64_t total_us = whole.value * unit_us + fraction_us;
  return std::chrono::milliseconds{static_cast<std::int64_t>((total_us + 999) / 1000)};
}

std::uint64_t parse_size(std::string_view text, std::string_view what) {
  const auto fail = [&](const std::string& why) -> failure {
    return usage_error(std::string(what) + ": " + in_quotes(text) + " " + why);
  };
  const auto number = read_digits(text);
  constexpr std::string_view hint = "e.g. 128, 4KiB, 1MiB";
  if (number.length == 0) throw fail("is not a size (" + std::string(hint) + ")");
  const auto rest = text.substr(number.length);
  struct unit {
    std::string_view name;
    std::uint64_t factor;
  };
  constexpr unit units[] = {
      {"", 1},          {"B", 1},      {"KiB", 1 << 10},  {"MiB", 1 << 20},
      {"GiB", 1 << 30}, {"KB", 1'000}, {"MB", 1'000'000}, {"GB", 1'000'000'000}};
  std::uint64_t factor = 0;
  for (const auto& u : units) {
    if (rest == u.name) factor = u.factor;
  }
  if (factor == 0) {
    throw fail("has an unknown unit " + in_quotes(rest) + " (" + std::string(hint) + ")");
  }
  if (number.overflow || number.value > UINT64_MAX / factor) throw fail("is too large");
  return number.value * factor;
}

client::header_list parse_headers(const std::vector<std::string>& specs) {
  client::header_list headers;
  std::set<std::string, std::less<>> seen;
  for (const auto& spec : specs) {
    const auto equals = spec.find('=');
    if (equals == std::string::npos || equals == 0) {
      throw usage_error("--header: " + in_quotes(spec) + " is not NAME=VALUE");
    }
    auto name = spec.substr(0, equals);
    if (!seen.insert(name).second) {
      throw usage_error("--header: " + in_quotes(name) +
                        " is given twice (a name may appear once)");
    }
    headers.emplace_back(std::move(name), spec.substr(equals + 1));
  }
  return headers;
}

std::optional<std::string> json_problem(std::string_view text) {
  // The frame's object is level 1, so `data` may open at most max_json_depth - 1 more.
  if (protocol::json::is_valid(text, protocol::max_json_depth - 1)) return std::nullopt;
  const auto first = std::find_if(text.begin(), text.end(), [](char c) {
    return c != ' ' && c != '\t' && c != '\n' && c != '\r';
  });
  if (first == text.end()) return "it is empty (JSON null is written null)";
  std::string problem;
  try {
    [[maybe_unused]] const auto parsed = nlohmann::json::parse(text);
    // nlohmann accepts what the server refuses: too deep, a BOM, a lone surrogate.
    problem = "it is not JSON as the protocol requires (RFC 8259, UTF-8, nesting up to " +
              std::to_string(protocol::max_json_depth - 1) + " levels)";
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, ...": the tag means nothing
    // to the user.
    if (const auto tag_end = what.find("] "); what.front() == '[' && tag_end != std::string::npos) {
      what.erase(0, tag_end + 2);
    }
    problem = "it is not valid JSON: " + what;
  }
  const std::string_view word(&*first, static_cast<std::size_t>(text.end() - first));
  const bool bare_word = std::isalpha(static_cast<unsigned char>(word.front())) != 0 &&
                         word.rfind("true", 0) != 0 && word.rfind("false", 0) != 0 &&
                         word.rfind("null", 0) != 0;
  if (bare_word) problem += R"( (a JSON string needs quotes: '"hello"'))";
  return problem;
}

server_choice resolve_server(const std::optional<std::string>& flag, const char* env_value) {
  server_choice choice;
  std::string text;
  if (flag) {
    choice.source = "--server";
    text = *flag;
  } else if (env_value != nullptr && *env_value != '\0') {
    choice.source = "TIDINGS_SERVER";
    text = env_value;
  } else {
    choice.source = "default";
    choice.address = client::server_address{"127.0.0.1", client::default_port};
    return choice;
  }
  const auto parsed = client::parse_server_address(text);
  if (!parsed) {
    throw usage_error(choice.source + ": " + in_quotes(text) +
                      " is not HOST[:PORT] (e.g. 127.0.0.1:4700, localhost, [::1]:4700)");
  }
  if (parsed->port == 0) throw usage_error(choice.source + ": " + in_quotes(text) + " has port 0");
  choice.address = *parsed;
  return choice;
}

std::string format_address(const client::server_address& address) {
  const bool v6 = address.host.find(':') != std::string::npos;
  return (v6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

std::string format_message_line(const client::message_view& message) {
  std::string line;
  line.reserve(message.topic.size() + message.data.size() + message.reply.size() +
               message.headers.size() + 48);
  line += R"({"topic":)";
  protocol::json::append_string(line, message.topic);
  line += R"(,"data":)";
  append_on_one_line(line, message.data);
  if (!message.reply.empty()) {
    line += R"(,"reply":)";
    protocol::json::append_string(line, message.reply);
  }
  if (!message.headers.empty()) {
    line += R"(,"headers":)";
    append_on_one_line(line, message.headers);
  }
  line += '}';
  return line;
}

std::string format_raw_line(std::string_view data) {
  std::string line;
  append_on_one_line(line, data);
  return line;
}

std::string format_nanos(std::uint64_t nanos) {
  struct unit {
    std::uint64_t size;
    const char* name;
  };
  constexpr unit units[] = {{1'000'000'000, "s"}, {1'000'000, "ms"}, {1'000, "us"}};
  for (const auto& u : units) {
    if (nanos >= u.size) {
      const double value = static_cast<double>(nanos) / static_cast<double>(u.size);
      const int decimals = value < 10 ? 2 : value < 100 ? 1 : 0;
      return format_fixed(value, decimals) + " " + u.name;
    }
  }
  return std::to_string(nanos) + " ns";
}

std::string format_count(std::uint64_t value) {
  const auto digits = std::to_string(value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string progress_bar(std::uint64_t done, std::uint64_t total, std::size_t width) {
  const double fraction =
      total == 0 ? 1.0 : std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
  const auto filled = static_cast<std::size_t>(fraction * static_cast<double>(width));
  std::string bar = "[";
  bar.append(filled, '=');
  if (filled < width) {
    bar += '>';
    bar.append(width - filled - 1, ' ');
  }
  char percent[16];
  std::snprintf(percent, sizeof percent, "] %3d%%", static_cast<int>(fraction * 100.0));
  return bar + percent;
}

std::size_t latency_histogram::bucket_of(std::uint64_t value) noexcept {
  if (value < sub_count) return static_cast<std::size_t>(value);
  const auto top_bit = static_cast<unsigned>(63 - std::countl_zero(value));
  const unsigned shift = top_bit - sub_bits;
  const auto sub = static_cast<std::size_t>((value >> shift) - sub_count);
  return sub_count * (shift + 1) + sub;
}

std::uint64_t latency_histogram::bucket_upper(std::size_t bucket) noexcept {
  if (bucket < sub_count) return bucket;
  const auto shift = static_cast<unsigned>(bucket / sub_count - 1);
  const auto lower = static_cast<std::uint64_t>(sub_count + bucket % sub_count) << shift;
  return lower + ((std::uint64_t{1} << shift) - 1);
}

void latency_histogram::record(std::uint64_t value) noexcept {
  ++buckets_[bucket_of(value)];
  ++count_;
  sum_ += value;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void latency_histogram::merge(const latency_histogram& other) noexcept {
  for (std::size_t i = 0; i < bucket_count; ++i)
    buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

std::uint64_t latency_histogram::percentile(double percent) const noexcept {
  if (count_ == 0) return 0;
  const double wanted =
      std::ceil(std::clamp(percent, 0.0, 100.0) / 100.0 * static_cast<double>(count_));
  const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(wanted));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(bucket_upper(i), max_);
  }
  return max_;
}

throughput compute_throughput(std::uint64_t messages, std::uint64_t bytes_each,
                              std::chrono::nanoseconds elapsed) {
  if (elapsed.count() <= 0) return {};
  const double seconds = static_cast<double>(elapsed.count()) / 1e9;
  const double count = static_cast<double>(messages);
  return {count / seconds, count * static_cast<double>(bytes_each) / seconds / 1e6};
}

std::vector<std::uint64_t> split_evenly(std::uint64_t total, std::uint64_t parts) {
  std::vector<std::uint64_t> shares;
  if (parts == 0) return shares;
  shares.reserve(static_cast<std::size_t>(parts));
  for (std::uint64_t i = 0; i < parts; ++i) {
    shares.push_back(total / parts + (i < total % parts ? 1 : 0));
  }
  return shares;
}

std::string make_bench_payload(std::size_t size) {
  std::string payload(size + 2, 'x');
  payload.front() = '"';
  payload.back() = '"';
  if (size >= timestamp_digits) std::fill_n(payload.begin() + 1, timestamp_digits, '0');
  return payload;
}

void stamp_bench_payload(std::string& payload, std::uint64_t nanos) noexcept {
  if (payload.size() < timestamp_digits + 2) return;
  constexpr char hex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < timestamp_digits; ++i) {
    payload[timestamp_digits - i] = hex[nanos & 0xF];
    nanos >>= 4;
  }
}

std::optional<std::uint64_t> read_bench_stamp(std::string_view payload) noexcept {
  if (payload.size() < timestamp_digits + 2 || payload.front() != '"') return std::nullopt;
  std::uint64_t value = 0;
  const auto digits = payload.substr(1, timestamp_digits);
  const auto [end, error] =
      std::from_chars(digits.data(), digits.data() + digits.size(), value, 16);
  if (error != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  return value;
}

}  // namespace tidings::cli
