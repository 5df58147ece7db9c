#pragma once

// tidingsd's settings: every option, its default, and how it is read.
//
// Sources, highest precedence first: command-line flags, TIDINGS_* environment
// variables, the file named by --config (CLI11's INI/TOML format), then the defaults
// below. Durations are written with units (`250ms`, `30s`, `2m`, `1h`), sizes with
// suffixes (`512`, `64KiB`, `1MiB`, `1GiB`; also `KB`/`MB`/`GB` as powers of 1000).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tidings::broker {

enum class slow_consumer_policy { close, drop };
enum class log_format { text, json };

struct config {
  std::string host = "0.0.0.0";
  std::uint16_t port = 4700;  // 0: an ephemeral port, named by the ready line
  unsigned threads = 0;       // event loops; 0: one per core
  std::string server_name = "tidingsd";

  std::uint32_t max_frame = 1024 * 1024;
  std::uint64_t max_pending = 64ULL * 1024 * 1024;
  std::chrono::milliseconds write_deadline{10'000};
  slow_consumer_policy slow_consumer = slow_consumer_policy::close;
  std::uint32_t max_connections = 65536;
  std::uint32_t max_subscriptions = 65536;  // per connection
  // Bytes the match cache (topic -> matching subscriptions) may hold; 0: no cache.
  std::uint64_t match_cache = 4ULL * 1024 * 1024;
  std::chrono::milliseconds ping_interval{30'000};
  std::uint32_t max_pings_out = 2;
  std::chrono::milliseconds auth_timeout{2'000};
  std::chrono::milliseconds drain_timeout{5'000};

  std::string log_level = "info";  // trace, debug, info, warn, error, critical, off
  log_format log_output = log_format::text;

  // `threads` with 0 resolved to the number of cores.
  unsigned effective_threads() const noexcept;
};

// What to do after reading the command line.
struct parse_outcome {
  std::optional<config> settings;  // set: run with these
  int exit_code = 0;               // unset settings: exit with this code...
  std::string message;             // ...after printing this (help, version or error)
};

// Reads flags, environment and config file, validates every value, and never throws:
// an invalid value gives exit_code 2 and one clear line naming the option.
parse_outcome parse_command_line(int argc, const char* const* argv);

// `250ms`, `30s`, `2m`, `1h`, `1500us` (rounded up to ms). Throws std::invalid_argument.
std::chrono::milliseconds parse_duration(std::string_view text);
// `512`, `64KiB`, `1MiB`, `1GiB`, `10KB`, `1MB`. Throws std::invalid_argument.
std::uint64_t parse_size(std::string_view text);

// The effective settings as `key=value` pairs, for the start-up log line.
std::vector<std::pair<std::string, std::string>> describe(const config& settings);

}  // namespace tidings::broker
