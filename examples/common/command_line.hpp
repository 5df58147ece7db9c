#pragma once

// The command line every example shares: `--server HOST:PORT` (else the TIDINGS_SERVER
// environment variable, else 127.0.0.1:4700) plus a few options of the example's own.
// Header-only and hand-rolled so that an example needs nothing but tidings::client.

#include <charconv>
#include <cstdlib>
#include <initializer_list>
#include <iomanip>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "tidings/client/errors.hpp"
#include "tidings/client/options.hpp"

namespace tidings::examples {

// Exit codes: 0 when the example did what it shows, 1 when something went wrong at run
// time (including a failed check), 2 for a bad command line.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

// One `--name VALUE` option (an integer within [min, max]) or, without `number`, a
// `--name` switch.
struct flag {
  std::string_view name;
  std::string_view help;
  int* number = nullptr;
  int min = 0;
  int max = 0;
  bool* toggle = nullptr;
};

// Fills `settings.host`/`settings.port` and the flags from argv. Returns an exit code
// when the program should stop at once: exit_ok after --help, exit_usage (with the
// reason on stderr) for a mistake.
inline std::optional<int> parse_command_line(int argc, char** argv, std::string_view about,
                                             std::initializer_list<flag> flags,
                                             client::options& settings) {
  const std::string_view program = argc > 0 ? argv[0] : "example";
  const auto usage = [&](std::ostream& out) {
    out << "usage: " << program << " [--server HOST:PORT]";
    for (const auto& f : flags)
      out << " [" << f.name << (f.number != nullptr ? " N" : "") << "]";
    out << "\n\n" << about << "\n\n";
    const auto column = [&](std::string_view left) {
      out << "  " << std::left << std::setw(20) << left << " ";
    };
    column("--server HOST:PORT");
    out << "the broker (default: $TIDINGS_SERVER, else 127.0.0.1:4700)\n";
    for (const auto& f : flags) {
      column(std::string(f.name) + (f.number != nullptr ? " N" : ""));
      out << f.help;
      if (f.number != nullptr)
        out << " (" << f.min << ".." << f.max << ", default " << *f.number << ")";
      out << "\n";
    }
  };
  const auto fail = [&](const std::string& problem) {
    std::cerr << program << ": " << problem << "\n";
    usage(std::cerr);
    return std::optional<int>(exit_usage);
  };

  std::string_view server = "127.0.0.1";
  if (const char* from_env = std::getenv("TIDINGS_SERVER"); from_env != nullptr && *from_env != 0) {
    server = from_env;
  }
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(std::cout);
      return exit_ok;
    }
    if (arg == "--server") {
      if (i + 1 == argc) return fail("--server needs a value");
      server = argv[++i];
      continue;
    }
    const flag* match = nullptr;
    for (const auto& f : flags) {
      if (f.name == arg) match = &f;
    }
    if (match == nullptr) return fail("unknown argument '" + std::string(arg) + "'");
    if (match->number == nullptr) {
      *match->toggle = true;
      continue;
    }
    if (i + 1 == argc) return fail(std::string(arg) + " needs a value");
    const std::string_view text = argv[++i];
    int value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < match->min ||
        value > match->max) {
      return fail(std::string(arg) + " must be an integer from " + std::to_string(match->min) +
                  " to " + std::to_string(match->max) + ", not '" + std::string(text) + "'");
    }
    *match->number = value;
  }

  const auto address = client::parse_server_address(server);
  if (!address) return fail("invalid server address '" + std::string(server) + "'");
  settings.host = address->host;
  settings.port = address->port;
  return std::nullopt;
}

// A topic prefix of this run (`<example>.<8 hex digits>`), so that two runs against the
// same broker, or other traffic on it, cannot mix with this run's messages and spoil
// its checks.
inline std::string run_prefix(std::string_view example) {
  std::random_device entropy;
  constexpr std::string_view digits = "0123456789abcdef";
  std::string prefix(example);
  prefix += '.';
  for (int i = 0; i < 8; ++i)
    prefix += digits[entropy() % digits.size()];
  return prefix;
}

inline std::string server_name(const client::options& settings) {
  // An IPv6 literal needs its brackets back to be read as HOST:PORT.
  const bool v6 = settings.host.find(':') != std::string::npos;
  return (v6 ? "[" + settings.host + "]" : settings.host) + ":" + std::to_string(settings.port);
}

// The message for a failed first connection, with the likely fix.
inline std::string cannot_connect(const client::options& settings, const client::error_code& ec) {
  return "cannot connect to " + server_name(settings) + ": " + ec.message() +
         " (is tidingsd running there? scripts/run.sh starts one)";
}

}  // namespace tidings::examples
