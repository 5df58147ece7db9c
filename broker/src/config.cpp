#include "tidings/broker/config.hpp"

#include <CLI/CLI.hpp>

#include "tidings/protocol/json.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <span>
#include <stdexcept>
#include <thread>
#include <utility>

namespace tidings::broker {
namespace {

constexpr std::string_view version_line = "tidingsd " TIDINGS_VERSION;
constexpr std::string_view program = "tidingsd";

constexpr std::uint64_t max_size_bytes = std::uint64_t{1} << 63;
constexpr std::uint64_t max_frame_min = 64;
// The wire prefix is 32 bits, but a frame this large already means a misconfigured client;
// capping here also keeps max_frame + 1024 and the server's envelope far from overflow.
constexpr std::uint64_t max_frame_max = 64ULL * 1024 * 1024;
// Slack for one server frame's `msg` envelope on top of a largest client frame (section 1).
constexpr std::uint64_t envelope_slack = 1024;
constexpr unsigned max_threads = 1024;
// Timers add these to steady_clock::now() in nanoseconds; a day is far beyond any sensible
// setting and far from overflow.
constexpr std::chrono::milliseconds max_duration = std::chrono::hours{24};

[[noreturn]] void fail(std::string message) {
  throw std::invalid_argument(std::move(message));
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view space = " \t\r\n\f\v";
  const auto first = text.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(space);
  return text.substr(first, last - first + 1);
}

// The value as the user wrote it, made safe for a one-line message that may end up in a
// JSON log: quoted, control characters and invalid UTF-8 escaped, cut short when long.
std::string shown(std::string_view text) {
  constexpr std::size_t max_shown = 64;
  constexpr std::string_view hex = "0123456789abcdef";
  std::string out = "\"";
  std::size_t i = 0;
  while (i < text.size() && i < max_shown) {
    const char c = text[i];
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else if (const auto length =
                   byte >= 0x80 ? protocol::json::utf8_sequence_length(text.substr(i)) : 0;
               length > 0) {
      out += text.substr(i, length);
      i += length;
      continue;
    } else {
      out += "\\x";
      out += hex[byte >> 4];
      out += hex[byte & 0xf];
    }
    ++i;
  }
  out += i < text.size() ? "...\"" : "\"";
  return out;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

struct number_prefix {
  std::uint64_t value = 0;
  std::size_t length = 0;  // digits consumed
  bool overflow = false;
};

number_prefix leading_number(std::string_view text) {
  number_prefix result;
  while (result.length < text.size() && is_digit(text[result.length])) {
    const auto digit = static_cast<std::uint64_t>(text[result.length] - '0');
    if (result.value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
      result.overflow = true;
    } else {
      result.value = result.value * 10 + digit;
    }
    ++result.length;
  }
  return result;
}

// `1.5s`, `0,5MiB`: say that fractions are not taken rather than "unknown unit".
bool starts_fraction(std::string_view rest) {
  return rest.size() >= 2 && (rest[0] == '.' || rest[0] == ',') && is_digit(rest[1]);
}

struct unit {
  std::string_view name;
  std::uint64_t factor;
};

constexpr std::array<unit, 7> size_units{{{"B", 1},
                                          {"KiB", 1024},
                                          {"MiB", 1024ULL * 1024},
                                          {"GiB", 1024ULL * 1024 * 1024},
                                          {"KB", 1000},
                                          {"MB", 1000ULL * 1000},
                                          {"GB", 1000ULL * 1000 * 1000}}};

constexpr std::string_view size_hint =
    "write e.g. 512, 64KiB, 1MiB; units B, KiB, MiB, GiB, KB, MB, GB";
constexpr std::string_view duration_hint = "write e.g. 250ms, 30s, 2m, 1h; units us, ms, s, m, h";

// Parses a whole decimal number with nothing around it but blanks.
std::optional<std::uint64_t> parse_whole(std::string_view text) {
  const auto s = trim(text);
  const auto number = leading_number(s);
  if (number.length == 0 || number.length != s.size() || number.overflow) return std::nullopt;
  return number.value;
}

std::string format_size(std::uint64_t bytes) {
  if (bytes != 0) {
    for (const auto* name : {"GiB", "MiB", "KiB"}) {
      const auto found = std::find_if(size_units.begin(), size_units.end(),
                                      [&](const unit& u) { return u.name == name; });
      if (bytes % found->factor == 0) return std::to_string(bytes / found->factor) + name;
    }
  }
  return std::to_string(bytes);
}

std::string format_duration(std::chrono::milliseconds duration) {
  const auto ms = duration.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1'000 == 0) return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

// --- One entry per option: how it is read, checked, shown and described. ---------------

struct option_spec {
  std::string_view name;   // long flag without dashes, and the config-file key
  std::string_view group;  // help section
  std::string_view value_name;
  std::string_view help;
  // Sets the field from text, or throws std::invalid_argument with a message that does
  // not name the option (the caller knows where the text came from).
  void (*apply)(config&, std::string_view);
  std::string (*show)(const config&);
};

template <typename T>
T whole_in_range(std::string_view text, std::uint64_t low, std::uint64_t high,
                 std::string_view expected) {
  const auto value = parse_whole(text);
  const auto s = trim(text);
  const bool negative = !s.empty() && s.front() == '-' && parse_whole(s.substr(1));
  if (!value && !negative) {
    fail(shown(text) + " is not a whole number (expected " + std::string(expected) + ")");
  }
  if (negative || *value < low || *value > high) {
    fail(shown(text) + " is out of range (expected " + std::string(expected) + ")");
  }
  return static_cast<T>(*value);
}

std::uint32_t positive_count(std::string_view text) {
  return whole_in_range<std::uint32_t>(text, 1, std::numeric_limits<std::uint32_t>::max(),
                                       "a whole number from 1 to 4294967295");
}

std::chrono::milliseconds duration_in_range(std::string_view text, bool allow_zero) {
  const auto value = parse_duration(text);
  if ((value.count() == 0 && !allow_zero) || value > max_duration) {
    fail(shown(text) + " is out of range (expected a duration " +
         (allow_zero ? "from 0s" : "above 0") + " up to 24h, e.g. 250ms, 30s)");
  }
  return value;
}

std::string non_empty(std::string_view text, std::string_view what) {
  if (trim(text).empty()) fail("an empty value is not " + std::string(what));
  return std::string(text);
}

template <std::size_t N>
std::string_view one_of(std::string_view text, const std::array<std::string_view, N>& choices) {
  const auto s = trim(text);
  for (const auto choice : choices) {
    if (s == choice) return choice;
  }
  std::string list;
  for (const auto choice : choices) {
    if (!list.empty()) list += ", ";
    list += choice;
  }
  fail(shown(text) + " is not one of " + list);
}

constexpr std::array<std::string_view, 7> log_levels{"trace", "debug",    "info", "warn",
                                                     "error", "critical", "off"};
constexpr std::array<std::string_view, 2> slow_consumer_names{"close", "drop"};
constexpr std::array<std::string_view, 2> log_format_names{"text", "json"};

std::span<const option_spec> option_specs() {
  // A plain array, so that its length follows the entries.
  static const option_spec specs[] = {
      {"host", "Network", "ADDRESS", "Address to listen on (0.0.0.0: every IPv4 interface)",
       [](config& c, std::string_view v) { c.host = non_empty(v, "an address"); },
       [](const config& c) { return c.host; }},
      {"port", "Network", "PORT", "TCP port to listen on; 0 picks a free port",
       [](config& c, std::string_view v) {
         c.port = whole_in_range<std::uint16_t>(v, 0, 65535, "a port from 0 to 65535");
       },
       [](const config& c) { return std::to_string(c.port); }},
      {"threads", "Network", "N", "Event-loop threads, at most 1024; 0: one per core",
       [](config& c, std::string_view v) {
         c.threads =
             whole_in_range<unsigned>(v, 0, max_threads, "0 to 1024 threads; 0: one per core");
       },
       [](const config& c) { return std::to_string(c.threads); }},
      {"server-name", "Network", "NAME", "Name announced to clients in `info`",
       [](config& c, std::string_view v) { c.server_name = non_empty(v, "a name"); },
       [](const config& c) { return c.server_name; }},

      {"max-frame", "Limits", "SIZE", "Largest frame a client may send (64 bytes to 64MiB)",
       [](config& c, std::string_view v) {
         const auto size = parse_size(v);
         if (size < max_frame_min || size > max_frame_max) {
           fail(shown(v) + " is out of range (expected a size from 64 bytes to 64MiB)");
         }
         c.max_frame = static_cast<std::uint32_t>(size);
       },
       [](const config& c) { return format_size(c.max_frame); }},
      {"max-pending", "Limits", "SIZE",
       "Unsent bytes per connection before --slow-consumer applies\n(at least max-frame + 1024)",
       [](config& c, std::string_view v) { c.max_pending = parse_size(v); },
       [](const config& c) { return format_size(c.max_pending); }},
      {"slow-consumer", "Limits", "close|drop",
       "At max-pending or write-deadline: close the connection,\nor drop the messages",
       [](config& c, std::string_view v) {
         c.slow_consumer = one_of(v, slow_consumer_names) == "drop" ? slow_consumer_policy::drop
                                                                    : slow_consumer_policy::close;
       },
       [](const config& c) {
         return std::string(c.slow_consumer == slow_consumer_policy::drop ? "drop" : "close");
       }},
      {"max-connections", "Limits", "N", "Connections at once; more get too_many_connections",
       [](config& c, std::string_view v) { c.max_connections = positive_count(v); },
       [](const config& c) { return std::to_string(c.max_connections); }},
      {"max-subscriptions", "Limits", "N", "Subscriptions per connection",
       [](config& c, std::string_view v) { c.max_subscriptions = positive_count(v); },
       [](const config& c) { return std::to_string(c.max_subscriptions); }},
      {"match-cache", "Limits", "SIZE",
       "Memory for cached topic matches (at most 1024 topics);\n0: no cache",
       [](config& c, std::string_view v) { c.match_cache = parse_size(v); },
       [](const config& c) { return format_size(c.match_cache); }},
      {"max-pings-out", "Limits", "N", "Unanswered pings before stale_connection",
       [](config& c, std::string_view v) { c.max_pings_out = positive_count(v); },
       [](const config& c) { return std::to_string(c.max_pings_out); }},

      {"write-deadline", "Timeouts", "DURATION",
       "A write making no progress this long is a slow consumer",
       [](config& c, std::string_view v) { c.write_deadline = duration_in_range(v, false); },
       [](const config& c) { return format_duration(c.write_deadline); }},
      {"ping-interval", "Timeouts", "DURATION", "Time between server pings; 0s: no pings",
       [](config& c, std::string_view v) { c.ping_interval = duration_in_range(v, true); },
       [](const config& c) { return format_duration(c.ping_interval); }},
      {"auth-timeout", "Timeouts", "DURATION", "Time for `connect` when auth is required",
       [](config& c, std::string_view v) { c.auth_timeout = duration_in_range(v, false); },
       [](const config& c) { return format_duration(c.auth_timeout); }},
      {"drain-timeout", "Timeouts", "DURATION",
       "Longest graceful shutdown; 0s: close without draining",
       [](config& c, std::string_view v) { c.drain_timeout = duration_in_range(v, true); },
       [](const config& c) { return format_duration(c.drain_timeout); }},

      {"log-level", "Logging", "LEVEL", "trace, debug, info, warn, error, critical or off",
       [](config& c, std::string_view v) { c.log_level = std::string(one_of(v, log_levels)); },
       [](const config& c) { return c.log_level; }},
      {"log-format", "Logging", "text|json", "Log lines as text or as JSON objects",
       [](config& c, std::string_view v) {
         c.log_output = one_of(v, log_format_names) == "json" ? log_format::json : log_format::text;
       },
       [](const config& c) {
         return std::string(c.log_output == log_format::json ? "json" : "text");
       }},
  };
  return specs;
}

std::string env_name(std::string_view option_name) {
  std::string name = "TIDINGS_";
  for (const char c : option_name) {
    name += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return name;
}

// An unset and an empty variable both mean "not given", as with CLI11's own envname.
std::optional<std::string> env_value(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

// Where a value came from, as the prefix of an error about it.
struct raw_value {
  std::string text;
  std::string where;  // "--port", "TIDINGS_PORT", "/etc/tidingsd.toml: port"
};

parse_outcome failure(std::string message) {
  return parse_outcome{std::nullopt, 2, std::string(program) + ": " + std::move(message)};
}

const option_spec* find_spec(std::string_view name) {
  for (const auto& spec : option_specs()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

// Reads the config file into key -> value. CLI11 parses the syntax (INI/TOML); keys and
// values are checked here so that its errors read like every other one.
std::map<std::string, raw_value, std::less<>> read_config_file(const std::string& path,
                                                               const std::string& where) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    fail(where + ": config file " + shown(path) + " cannot be read: " + ec.message());
  }
  if (!std::filesystem::exists(status)) {
    fail(where + ": config file " + shown(path) + " does not exist");
  }
  if (std::filesystem::is_directory(status)) {
    fail(where + ": config file " + shown(path) + " is a directory");
  }
  std::ifstream in(path);
  if (!in) {
    fail(where + ": config file " + shown(path) + " cannot be opened: " + std::strerror(errno));
  }

  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_config(in);
  } catch (const std::exception& e) {
    fail(path + ": " + e.what());
  }

  std::map<std::string, raw_value, std::less<>> values;
  for (const auto& item : items) {
    // Section boundaries CLI11 inserts; a key inside a section is refused below.
    if (item.name == "--" || item.name == "++") continue;
    std::string key = item.name;
    // `max_pending` is the C++ spelling; accept it as the same key.
    std::replace(key.begin(), key.end(), '_', '-');
    if (!item.parents.empty()) {
      fail(path + ": unknown key " + shown(item.fullname()) +
           " (write keys at the top level, outside any [section])");
    }
    if (key == "config") fail(path + ": a config file cannot name another config file");
    if (find_spec(key) == nullptr) {
      fail(path + ": unknown key " + shown(item.name) +
           " (keys are the long option names, e.g. max-pending)");
    }
    // CLI11 splits unquoted blanks and commas into several inputs, and merges a key
    // repeated on consecutive lines; every option takes exactly one value.
    if (item.inputs.size() != 1) {
      std::string list;
      for (const auto& input : item.inputs) {
        if (!list.empty()) list += ", ";
        list += shown(input);
      }
      fail(path + ": " + key + ": expected one value, got " + std::to_string(item.inputs.size()) +
           " (" + list + "); quote a value that has blanks or commas, and set a key once");
    }
    const auto [slot, added] =
        values.emplace(key, raw_value{item.inputs.front(), path + ": " + key});
    if (!added) fail(path + ": " + key + " is set twice");
  }
  return values;
}

std::string help_footer() {
  return "Durations: a whole number and a unit: us (rounded up to ms), ms, s, m or h, e.g. 250ms, "
         "30s, 2m.\n"
         "Sizes: bytes (512), or with KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of "
         "1000),\ne.g. 64KiB, 1MiB.\n"
         "Every option can also be set by the environment variable TIDINGS_<NAME> "
         "(--max-pending:\nTIDINGS_MAX_PENDING, --config: TIDINGS_CONFIG) or by its key in "
         "the config file\n(max-pending = \"64MiB\"). Flags win over the environment, which wins "
         "over the file,\nwhich wins over the defaults shown in brackets.";
}

// CLI11 2.1 puts two blank lines between option groups and none before the usage line.
std::string help_text(const CLI::App& app) {
  std::string text = app.help();
  for (auto at = text.find("\n\n\n"); at != std::string::npos; at = text.find("\n\n\n", at)) {
    text.erase(at, 1);
  }
  if (const auto usage = text.find("\nUsage:"); usage != std::string::npos) {
    text.insert(usage, "\n");
  }
  return text;
}

}  // namespace

unsigned config::effective_threads() const noexcept {
  if (threads != 0) return threads;
  return std::max(1U, std::thread::hardware_concurrency());
}

std::chrono::milliseconds parse_duration(std::string_view text) {
  const auto s = trim(text);
  if (!s.empty() && s.front() == '-') fail(shown(text) + " is negative (a duration is >= 0)");
  const auto number = leading_number(s);
  if (number.length == 0)
    fail(shown(text) + " is not a duration (" + std::string(duration_hint) + ")");
  const auto rest = trim(s.substr(number.length));
  if (starts_fraction(rest)) {
    fail(shown(text) + " is not a whole number (use a smaller unit, e.g. 1500ms for 1.5s)");
  }
  if (rest.empty()) {
    // `0` means the same in every unit, so it needs none.
    if (!number.overflow && number.value == 0) return std::chrono::milliseconds{0};
    fail(shown(text) + " has no unit: write a unit, e.g. " +
         std::string(s.substr(0, number.length)) + "s or " +
         std::string(s.substr(0, number.length)) + "ms (units us, ms, s, m, h)");
  }

  constexpr auto max_ms = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t ms = 0;
  const auto too_large = [&] { fail(shown(text) + " is too large a duration"); };
  if (rest == "us") {
    if (number.overflow) too_large();
    ms = number.value / 1000 + (number.value % 1000 != 0 ? 1 : 0);
  } else {
    std::uint64_t factor = 0;
    if (rest == "ms") factor = 1;
    if (rest == "s") factor = 1'000;
    if (rest == "m") factor = 60'000;
    if (rest == "h") factor = 3'600'000;
    if (factor == 0) {
      fail(shown(text) + " has an unknown unit " + shown(rest) + " (" + std::string(duration_hint) +
           ")");
    }
    if (number.overflow || number.value > max_ms / factor) too_large();
    ms = number.value * factor;
  }
  if (ms > max_ms) too_large();
  return std::chrono::milliseconds{static_cast<std::int64_t>(ms)};
}

std::uint64_t parse_size(std::string_view text) {
  const auto s = trim(text);
  if (!s.empty() && s.front() == '-') fail(shown(text) + " is negative (a size is >= 0)");
  const auto number = leading_number(s);
  if (number.length == 0) fail(shown(text) + " is not a size (" + std::string(size_hint) + ")");
  const auto rest = trim(s.substr(number.length));
  if (starts_fraction(rest)) {
    fail(shown(text) + " is not a whole number (use a smaller unit, e.g. 1536KiB for 1.5MiB)");
  }
  std::uint64_t factor = rest.empty() ? 1 : 0;
  for (const auto& u : size_units) {
    if (rest == u.name) factor = u.factor;
  }
  if (factor == 0) {
    fail(shown(text) + " is not a size: unknown unit " + shown(rest) + " (" +
         std::string(size_hint) + ")");
  }
  if (number.overflow || number.value > max_size_bytes / factor) {
    fail(shown(text) + " is too large (at most 2^63 bytes)");
  }
  return number.value * factor;
}

std::vector<std::pair<std::string, std::string>> describe(const config& settings) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& spec : option_specs()) {
    // What runs matters in the start-up line, not the 0 that asked for it.
    pairs.emplace_back(spec.name, spec.name == "threads"
                                      ? std::to_string(settings.effective_threads())
                                      : spec.show(settings));
  }
  return pairs;
}

parse_outcome parse_command_line(int argc, const char* const* argv) {
  try {
    const auto& specs = option_specs();
    const config defaults;

    CLI::App app{std::string(version_line) +
                     ": the Tidings publish/subscribe broker.\nServes Tidings protocol clients "
                     "over TCP and routes each published message to every\nmatching "
                     "subscription.",
                 std::string(program)};
    // Unknown arguments are collected, not thrown, so that the message can be ours.
    app.allow_extras();
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.get_formatter()->column_width(40);
    app.footer(help_footer());
    app.get_help_ptr()->group("General");
    app.set_version_flag("--version", std::string(version_line), "Print the version and exit")
        ->group("General");

    std::string config_path;
    auto* config_option =
        app.add_option("--config", config_path,
                       "Read settings from FILE (INI/TOML, `key = value`,\nkeys are the long "
                       "option names)")
            ->option_text("FILE")
            ->group("General");

    // Bound to strings, not to the fields: each value is checked below, after we know
    // whether the flag, the environment or the file supplied it.
    std::vector<std::string> flag_text(specs.size());
    std::vector<CLI::Option*> flag_options;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      const auto& spec = specs[i];
      flag_options.push_back(
          app.add_option("--" + std::string(spec.name), flag_text[i], std::string(spec.help))
              ->option_text(std::string(spec.value_name) + " [" + spec.show(defaults) + "]")
              ->group(std::string(spec.group)));
    }

    std::vector<std::string> args;  // CLI11 takes them in reverse order
    for (int i = argc - 1; i >= 1 && argv != nullptr; --i) {
      args.emplace_back(argv[i] != nullptr ? argv[i] : "");
    }
    try {
      app.parse(std::move(args));
    } catch (const CLI::CallForHelp&) {
      return parse_outcome{std::nullopt, 0, help_text(app)};
    } catch (const CLI::CallForAllHelp&) {
      return parse_outcome{std::nullopt, 0, help_text(app)};
    } catch (const CLI::CallForVersion&) {
      return parse_outcome{std::nullopt, 0, std::string(version_line)};
    } catch (const CLI::ArgumentMismatch& e) {
      // CLI11 words a flag at the end without its value as "--port: 1 required PORT missing".
      const std::string what = e.what();
      const auto colon = what.find(':');
      if (what.rfind("--", 0) == 0 && colon != std::string::npos &&
          what.find(" missing") != std::string::npos) {
        return failure(what.substr(0, colon) + ": a value is missing (see tidingsd --help)");
      }
      return failure(what + " (see tidingsd --help)");
    } catch (const CLI::ParseError& e) {
      return failure(std::string(e.what()) + " (see tidingsd --help)");
    }

    // CLI11 gives an option the next argument even when that is another flag, so that
    // `--host --port 5` would read "--port" as the host and complain about "5".
    const auto looks_like_flag = [&](const std::string& value) {
      if (value.rfind("--", 0) != 0) return false;
      const auto name = std::string_view(value).substr(2, value.find('=') - 2);
      return find_spec(name) != nullptr || name == "config" || name == "help" || name == "version";
    };
    for (std::size_t i = 0; i < specs.size(); ++i) {
      if (flag_options[i]->count() > 0 && looks_like_flag(flag_text[i])) {
        return failure("--" + std::string(specs[i].name) +
                       ": a value is missing (see tidingsd --help)");
      }
    }
    if (config_option->count() > 0 && looks_like_flag(config_path)) {
      return failure("--config: a value is missing (see tidingsd --help)");
    }

    // A lone `--` ends the options, as usual; whatever follows it is an argument.
    auto extras = app.remaining();
    const auto end_of_options = std::find(extras.begin(), extras.end(), "--");
    const bool after_end = end_of_options == extras.begin();
    if (end_of_options != extras.end()) extras.erase(end_of_options);
    if (!extras.empty()) {
      const auto& first = extras.front();
      if (!after_end && first.size() > 1 && first.front() == '-') {
        return failure("unknown option " + shown(first.substr(0, first.find('='))) +
                       " (see tidingsd --help)");
      }
      return failure("unexpected argument " + shown(first) +
                     " (tidingsd takes only options; see tidingsd --help)");
    }

    std::map<std::string, raw_value, std::less<>> file_values;
    {
      std::optional<raw_value> file;
      if (config_option->count() > 0) {
        file = raw_value{config_path, "--config"};
      } else if (auto env = env_value("TIDINGS_CONFIG")) {
        file = raw_value{*env, "TIDINGS_CONFIG"};
      }
      if (file) {
        try {
          file_values = read_config_file(file->text, file->where);
        } catch (const std::invalid_argument& e) {
          return failure(e.what());
        }
      }
    }

    // Precedence is resolved here rather than by CLI11, whose 2.1 parse applies the
    // config file before the environment and so would let a file value beat a variable.
    config settings;
    std::vector<std::optional<std::string>> source_of(specs.size());  // for the cross-rule
    for (std::size_t i = 0; i < specs.size(); ++i) {
      const auto& spec = specs[i];
      std::optional<raw_value> raw;
      if (flag_options[i]->count() > 0) {
        raw = raw_value{flag_text[i], "--" + std::string(spec.name)};
      } else if (const auto variable = env_name(spec.name); auto env = env_value(variable)) {
        raw = raw_value{*env, variable};
      } else if (const auto found = file_values.find(spec.name); found != file_values.end()) {
        raw = found->second;
      }
      if (!raw) continue;
      try {
        spec.apply(settings, raw->text);
      } catch (const std::invalid_argument& e) {
        return failure(raw->where + ": " + e.what());
      }
      source_of[i] = raw->where;
    }

    // Cross-option rule: a connection must be able to hold one largest frame.
    const auto needed = std::uint64_t{settings.max_frame} + envelope_slack;
    if (settings.max_pending < needed) {
      const auto index_of = [&](std::string_view name) {
        return static_cast<std::size_t>(
            std::find_if(specs.begin(), specs.end(),
                         [&](const option_spec& s) { return s.name == name; }) -
            specs.begin());
      };
      const auto& pending_source = source_of[index_of("max-pending")];
      const auto& frame_source = source_of[index_of("max-frame")];
      const auto rule = "max-pending (" + format_size(settings.max_pending) +
                        ") must be at least max-frame (" + format_size(settings.max_frame) +
                        ") + 1024 bytes = " + std::to_string(needed) +
                        " bytes, so that one largest frame fits";
      if (pending_source) return failure(*pending_source + ": " + rule);
      return failure(frame_source.value_or("--max-frame") + ": " + rule +
                     "; raise max-pending too");
    }

    return parse_outcome{std::move(settings), 0, {}};
  } catch (const std::exception& e) {
    // Only a bug or an allocation failure ends here; the caller still gets one line.
    return failure(std::string("cannot read the settings: ") + e.what());
  } catch (...) {
    return failure("cannot read the settings: unknown error");
  }
}

}  // namespace tidings::broker
