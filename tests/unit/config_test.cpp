#include "tidings/broker/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using tidings::broker::config;
using tidings::broker::describe;
using tidings::broker::log_format;
using tidings::broker::parse_command_line;
using tidings::broker::parse_duration;
using tidings::broker::parse_outcome;
using tidings::broker::parse_size;
using tidings::broker::slow_consumer_policy;

// Every variable the parser reads; the fixture clears them so that the developer's own
// environment cannot leak into a test, and restores them afterwards.
const std::vector<std::string> variables = {"TIDINGS_HOST",
                                            "TIDINGS_PORT",
                                            "TIDINGS_THREADS",
                                            "TIDINGS_SERVER_NAME",
                                            "TIDINGS_MAX_FRAME",
                                            "TIDINGS_MAX_PENDING",
                                            "TIDINGS_WRITE_DEADLINE",
                                            "TIDINGS_SLOW_CONSUMER",
                                            "TIDINGS_MAX_CONNECTIONS",
                                            "TIDINGS_MAX_SUBSCRIPTIONS",
                                            "TIDINGS_PING_INTERVAL",
                                            "TIDINGS_MAX_PINGS_OUT",
                                            "TIDINGS_AUTH_TIMEOUT",
                                            "TIDINGS_DRAIN_TIMEOUT",
                                            "TIDINGS_LOG_LEVEL",
                                            "TIDINGS_LOG_FORMAT",
                                            "TIDINGS_CONFIG"};

parse_outcome parse(std::initializer_list<const char*> args) {
  std::vector<const char*> argv{"tidingsd"};
  argv.insert(argv.end(), args.begin(), args.end());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

std::map<std::string, std::string> described(const config& settings) {
  std::map<std::string, std::string> out;
  for (auto& [key, value] : describe(settings))
    out.emplace(key, value);
  return out;
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& name : variables) {
      if (const char* value = std::getenv(name.c_str())) saved_.emplace_back(name, value);
      ::unsetenv(name.c_str());
    }
  }

  void TearDown() override {
    for (const auto& name : variables)
      ::unsetenv(name.c_str());
    for (const auto& [name, value] : saved_)
      ::setenv(name.c_str(), value.c_str(), 1);
    for (const auto& path : files_) {
      std::error_code ignored;
      std::filesystem::remove(path, ignored);
    }
  }

  static void set_env(const std::string& name, const std::string& value) {
    ::setenv(name.c_str(), value.c_str(), 1);
  }

  // Writes `text` to a fresh file in the temp directory, removed in TearDown.
  std::string write_file(const std::string& text) {
    static int counter = 0;
    const auto path = std::filesystem::temp_directory_path() /
                      ("tidings_config_test_" + std::to_string(::getpid()) + "_" +
                       std::to_string(counter++) + ".toml");
    std::ofstream(path) << text;
    files_.push_back(path);
    return path.string();
  }

  // Expects a refusal: exit 2, no settings, one line naming `where` and `detail`.
  static void expect_error(const parse_outcome& outcome, std::string_view where,
                           std::string_view detail) {
    EXPECT_FALSE(outcome.settings.has_value());
    EXPECT_EQ(outcome.exit_code, 2);
    EXPECT_EQ(outcome.message.rfind("tidingsd: ", 0), 0U) << outcome.message;
    EXPECT_EQ(outcome.message.find('\n'), std::string::npos) << outcome.message;
    EXPECT_NE(outcome.message.find(where), std::string::npos)
        << "want \"" << where << "\" in: " << outcome.message;
    EXPECT_NE(outcome.message.find(detail), std::string::npos)
        << "want \"" << detail << "\" in: " << outcome.message;
  }

  // Parses, expecting success, and returns the settings.
  static config accepted(const parse_outcome& outcome) {
    EXPECT_TRUE(outcome.settings.has_value()) << outcome.message;
    EXPECT_EQ(outcome.exit_code, 0);
    return outcome.settings.value_or(config{});
  }

 private:
  std::vector<std::pair<std::string, std::string>> saved_;
  std::vector<std::filesystem::path> files_;
};

// --- Defaults and flags -------------------------------------------------------------------

TEST_F(ConfigTest, NoArgumentsGiveTheDefaults) {
  const auto c = accepted(parse({}));
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.port, 4700);
  EXPECT_EQ(c.threads, 0U);
  EXPECT_EQ(c.server_name, "tidingsd");
  EXPECT_EQ(c.max_frame, 1024U * 1024U);
  EXPECT_EQ(c.max_pending, 64ULL * 1024 * 1024);
  EXPECT_EQ(c.write_deadline, 10s);
  EXPECT_EQ(c.slow_consumer, slow_consumer_policy::close);
  EXPECT_EQ(c.max_connections, 65536U);
  EXPECT_EQ(c.max_subscriptions, 65536U);
  EXPECT_EQ(c.match_cache, 4ULL * 1024 * 1024);
  EXPECT_EQ(c.ping_interval, 30s);
  EXPECT_EQ(c.max_pings_out, 2U);
  EXPECT_EQ(c.auth_timeout, 2s);
  EXPECT_EQ(c.drain_timeout, 5s);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.log_output, log_format::text);
}

TEST_F(ConfigTest, ZeroArgcIsTheDefaults) {
  const auto outcome = parse_command_line(0, nullptr);
  ASSERT_TRUE(outcome.settings.has_value()) << outcome.message;
  EXPECT_EQ(outcome.settings->port, 4700);
}

TEST_F(ConfigTest, EveryFlagSetsItsField) {
  const auto c = accepted(parse({"--host",
                                 "127.0.0.1",
                                 "--port",
                                 "4800",
                                 "--threads",
                                 "3",
                                 "--server-name",
                                 "edge-1",
                                 "--max-frame",
                                 "64KiB",
                                 "--max-pending",
                                 "1MiB",
                                 "--write-deadline",
                                 "250ms",
                                 "--slow-consumer",
                                 "drop",
                                 "--max-connections",
                                 "100",
                                 "--max-subscriptions",
                                 "50",
                                 "--match-cache",
                                 "0",
                                 "--ping-interval",
                                 "2m",
                                 "--max-pings-out",
                                 "5",
                                 "--auth-timeout",
                                 "1500us",
                                 "--drain-timeout",
                                 "1h",
                                 "--log-level",
                                 "debug",
                                 "--log-format",
                                 "json"}));
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.port, 4800);
  EXPECT_EQ(c.threads, 3U);
  EXPECT_EQ(c.server_name, "edge-1");
  EXPECT_EQ(c.max_frame, 65536U);
  EXPECT_EQ(c.max_pending, 1048576U);
  EXPECT_EQ(c.write_deadline, 250ms);
  EXPECT_EQ(c.slow_consumer, slow_consumer_policy::drop);
  EXPECT_EQ(c.max_connections, 100U);
  EXPECT_EQ(c.max_subscriptions, 50U);
  EXPECT_EQ(c.match_cache, 0U);
  EXPECT_EQ(c.ping_interval, 2min);
  EXPECT_EQ(c.max_pings_out, 5U);
  EXPECT_EQ(c.auth_timeout, 2ms);
  EXPECT_EQ(c.drain_timeout, 1h);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.log_output, log_format::json);
}

TEST_F(ConfigTest, EqualsSyntaxAndTheLastRepeatWins) {
  const auto c = accepted(parse({"--port=5000", "--port", "5001", "--host=::1"}));
  EXPECT_EQ(c.port, 5001);
  EXPECT_EQ(c.host, "::1");
}

TEST_F(ConfigTest, EveryLogLevelIsAccepted) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    EXPECT_EQ(accepted(parse({"--log-level", level})).log_level, level);
  }
}

// --- Durations and sizes ------------------------------------------------------------------

TEST(ParseDuration, AcceptsWholeNumbersWithAUnit) {
  const std::vector<std::pair<std::string_view, std::chrono::milliseconds>> cases = {
      {"250ms", 250ms},
      {"30s", 30s},
      {"2m", 2min},
      {"1h", 1h},
      {"0s", 0ms},
      {"0ms", 0ms},
      {"0", 0ms},  // zero is the same in every unit
      {"1500us", 2ms},
      {"1us", 1ms},
      {"1000us", 1ms},
      {"1001us", 2ms},
      {"0us", 0ms},
      {"007s", 7s},
      {" 5s ", 5s},
      {"5 s", 5s},
      {"9223372036854775807ms", std::chrono::milliseconds::max()},
      {"2562047788015h", std::chrono::hours{2562047788015}},
  };
  for (const auto& [text, expected] : cases) {
    EXPECT_EQ(parse_duration(text), expected) << text;
  }
}

TEST(ParseDuration, RejectsWithAClearMessage) {
  const std::vector<std::pair<std::string_view, std::string_view>> cases = {
      {"30", "write a unit"},
      {"", "not a duration"},
      {"   ", "not a duration"},
      {"s", "not a duration"},
      {"abc", "not a duration"},
      {"+5s", "not a duration"},
      {"-5s", "negative"},
      {"-0s", "negative"},
      {"1.5s", "whole number"},
      {"1,5s", "whole number"},
      {"5x", "unknown unit"},
      {"5S", "unknown unit"},
      {"5sec", "unknown unit"},
      {"1h30m", "unknown unit"},
      {"0x10s", "unknown unit"},
      {"9223372036854775808ms", "too large"},
      {"2562047788016h", "too large"},
      {"99999999999999999999s", "too large"},
      {"99999999999999999999us", "too large"},
  };
  for (const auto& [text, detail] : cases) {
    try {
      parse_duration(text);
      ADD_FAILURE() << "accepted \"" << text << "\"";
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(detail), std::string::npos) << text << ": " << message;
      EXPECT_NE(message.find("\"" + std::string(text) + "\""), std::string::npos) << message;
    }
  }
}

TEST(ParseSize, AcceptsBytesAndSuffixes) {
  const std::vector<std::pair<std::string_view, std::uint64_t>> cases = {
      {"0", 0},
      {"512", 512},
      {"512B", 512},
      {"64KiB", 64 * 1024},
      {"1MiB", 1024 * 1024},
      {"1GiB", 1024ULL * 1024 * 1024},
      {"10KB", 10'000},
      {"1MB", 1'000'000},
      {"2GB", 2'000'000'000},
      {" 64 MiB ", 64ULL * 1024 * 1024},
      {"9223372036854775808", std::uint64_t{1} << 63},
      {"8589934592GiB", std::uint64_t{1} << 63},
  };
  for (const auto& [text, expected] : cases) {
    EXPECT_EQ(parse_size(text), expected) << text;
  }
}

TEST(ParseSize, RejectsWithAClearMessage) {
  const std::vector<std::pair<std::string_view, std::string_view>> cases = {
      {"12XB", "unknown unit"},
      {"1kib", "unknown unit"},
      {"1 2", "unknown unit"},
      {"1TiB", "unknown unit"},
      {"", "not a size"},
      {"abc", "not a size"},
      {"MiB", "not a size"},
      {"+1", "not a size"},
      {"-1", "negative"},
      {"-1MiB", "negative"},
      {"1.5MiB", "whole number"},
      {"9223372036854775809", "too large"},
      {"18446744073709551616", "too large"},
      {"8589934593GiB", "too large"},
      {"100000000000000000000KB", "too large"},
  };
  for (const auto& [text, detail] : cases) {
    try {
      parse_size(text);
      ADD_FAILURE() << "accepted \"" << text << "\"";
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(detail), std::string::npos) << text << ": " << message;
    }
  }
}

TEST(ParseSize, MessageShowsTheValueEscapedOnOneLine) {
  try {
    parse_size("1\nMiB\"");
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_NE(message.find(R"("1\x0aMiB\"")"), std::string::npos) << message;
  }
}

// --- Validation: each rule names the option and the value ---------------------------------

TEST_F(ConfigTest, PortRange) {
  EXPECT_EQ(accepted(parse({"--port", "0"})).port, 0);
  EXPECT_EQ(accepted(parse({"--port", "65535"})).port, 65535);
  expect_error(parse({"--port", "65536"}), "--port: \"65536\"", "out of range");
  expect_error(parse({"--port", "-1"}), "--port: \"-1\"", "out of range");
  expect_error(parse({"--port", "http"}), "--port: \"http\"", "not a whole number");
  expect_error(parse({"--port", "1e3"}), "--port", "0 to 65535");
}

TEST_F(ConfigTest, ThreadsRange) {
  EXPECT_EQ(accepted(parse({"--threads", "0"})).threads, 0U);
  EXPECT_EQ(accepted(parse({"--threads", "1024"})).threads, 1024U);
  expect_error(parse({"--threads", "1025"}), "--threads: \"1025\"", "0 to 1024");
}

TEST_F(ConfigTest, HostAndNameMustNotBeEmpty) {
  expect_error(parse({"--host", ""}), "--host", "empty");
  expect_error(parse({"--server-name", " "}), "--server-name", "empty");
}

TEST_F(ConfigTest, MaxFrameRange) {
  EXPECT_EQ(accepted(parse({"--max-frame", "64"})).max_frame, 64U);
  EXPECT_EQ(accepted(parse({"--max-frame", "64MiB", "--max-pending", "65MiB"})).max_frame,
            64U * 1024 * 1024);
  expect_error(parse({"--max-frame", "63"}), "--max-frame: \"63\"", "64 bytes to 64MiB");
  expect_error(parse({"--max-frame", "67108865", "--max-pending", "1GiB"}),
               "--max-frame: \"67108865\"", "out of range");
  expect_error(parse({"--max-frame", "4GiB"}), "--max-frame", "out of range");
  expect_error(parse({"--max-frame", "1.5MiB"}), "--max-frame: \"1.5MiB\"", "whole number");
}

TEST_F(ConfigTest, MaxPendingMustHoldOneLargestFrame) {
  // Exactly max-frame + 1024 is enough.
  EXPECT_EQ(accepted(parse({"--max-pending", "1049600"})).max_pending, 1049600U);
  expect_error(parse({"--max-pending", "1049599"}), "--max-pending", "at least max-frame");
  expect_error(parse({"--max-pending", "12XB"}), "--max-pending: \"12XB\" is not a size", "64KiB");
  // With max-pending at its default, the frame setting that breaks the rule is named.
  expect_error(parse({"--max-frame", "64MiB"}), "--max-frame", "max-pending (64MiB)");
}

TEST_F(ConfigTest, DurationRules) {
  expect_error(parse({"--write-deadline", "0s"}), "--write-deadline: \"0s\"", "above 0");
  expect_error(parse({"--auth-timeout", "0ms"}), "--auth-timeout: \"0ms\"", "above 0");
  expect_error(parse({"--write-deadline", "30"}), "--write-deadline: \"30\"", "write a unit");
  expect_error(parse({"--drain-timeout", "25h"}), "--drain-timeout: \"25h\"", "24h");
  expect_error(parse({"--ping-interval", "-1s"}), "--ping-interval", "negative");
  EXPECT_EQ(accepted(parse({"--ping-interval", "0s"})).ping_interval, 0ms);
  EXPECT_EQ(accepted(parse({"--drain-timeout", "0s"})).drain_timeout, 0ms);
  EXPECT_EQ(accepted(parse({"--write-deadline", "24h"})).write_deadline, 24h);
}

TEST_F(ConfigTest, CountsMustBePositive) {
  for (const char* flag : {"--max-connections", "--max-subscriptions", "--max-pings-out"}) {
    expect_error(parse({flag, "0"}), std::string(flag) + ": \"0\"", "out of range");
    expect_error(parse({flag, "4294967296"}), flag, "out of range");
    expect_error(parse({flag, "many"}), flag, "not a whole number");
  }
  EXPECT_EQ(accepted(parse({"--max-connections", "4294967295"})).max_connections, 4294967295U);
}

TEST_F(ConfigTest, ChoicesAreChecked) {
  expect_error(parse({"--slow-consumer", "kill"}), "--slow-consumer: \"kill\"", "close, drop");
  expect_error(parse({"--log-level", "verbose"}), "--log-level: \"verbose\"", "critical");
  expect_error(parse({"--log-format", "xml"}), "--log-format: \"xml\"", "text, json");
}

// --- Command line errors, help, version ---------------------------------------------------

TEST_F(ConfigTest, UnknownFlagExits2) {
  expect_error(parse({"--prot", "4700"}), "unknown option \"--prot\"", "--help");
  expect_error(parse({"--prot=4700"}), "unknown option \"--prot\"", "--help");
  expect_error(parse({"-p"}), "unknown option \"-p\"", "--help");
  expect_error(parse({"serve"}), "unexpected argument \"serve\"", "only options");
}

TEST_F(ConfigTest, DoubleDashEndsTheOptions) {
  EXPECT_EQ(accepted(parse({"--port", "1", "--"})).port, 1);
  expect_error(parse({"--", "--port"}), "unexpected argument \"--port\"", "only options");
}

TEST_F(ConfigTest, MissingValueExits2) {
  expect_error(parse({"--port"}), "--port", "a value is missing");
  // CLI11 would take "--port" as the host; the parser names the real mistake.
  expect_error(parse({"--host", "--port", "5"}), "--host", "a value is missing");
  expect_error(parse({"--config"}), "--config", "a value is missing");
}

TEST_F(ConfigTest, ValuesInMessagesKeepUtf8AndEscapeTheRest) {
  expect_error(parse({"--port", "caf\u00e9"}), "\"caf\u00e9\"", "not a whole number");
  expect_error(parse({"--port", "\xff\xfe"}), R"("\xff\xfe")", "not a whole number");
  expect_error(parse({"--port", "\xed\xa0\x80"}), R"("\xed\xa0\x80")", "not a whole number");
  const std::string long_value(200, '9');
  expect_error(parse({"--port", long_value.c_str()}), std::string(64, '9') + "...\"", "--port");
}

TEST_F(ConfigTest, NeverThrows) {
  EXPECT_NO_THROW(parse({"--max-pending", "\xff\xfe"}));
  EXPECT_NO_THROW(parse({"--", "--port"}));
  EXPECT_NO_THROW(parse({"--port=", "--host="}));
  EXPECT_NO_THROW(parse({"---", "-", ""}));
}

TEST_F(ConfigTest, HelpExits0WithGroupedOptions) {
  for (const char* flag : {"--help", "-h"}) {
    const auto outcome = parse({flag});
    EXPECT_FALSE(outcome.settings.has_value());
    EXPECT_EQ(outcome.exit_code, 0);
    const auto& text = outcome.message;
    for (const char* part :
         {"publish/subscribe", "Usage: tidingsd", "Network:", "Limits:", "Timeouts:", "Logging:",
          "--max-pending SIZE [64MiB]", "--write-deadline DURATION [10s]", "--port PORT [4700]",
          "--config FILE", "--version", "TIDINGS_MAX_PENDING", "KiB", "250ms"}) {
      EXPECT_NE(text.find(part), std::string::npos) << "want \"" << part << "\" in:\n" << text;
    }
    EXPECT_EQ(text.find("\n\n\n"), std::string::npos) << text;
  }
}

TEST_F(ConfigTest, HelpWinsOverBadValues) {
  EXPECT_EQ(parse({"--port", "x", "--help"}).exit_code, 0);
}

TEST_F(ConfigTest, VersionExits0) {
  const auto outcome = parse({"--version"});
  EXPECT_FALSE(outcome.settings.has_value());
  EXPECT_EQ(outcome.exit_code, 0);
  EXPECT_EQ(outcome.message, "tidingsd 0.1.0");
}

// --- Environment --------------------------------------------------------------------------

TEST_F(ConfigTest, EveryVariableSetsItsField) {
  set_env("TIDINGS_HOST", "10.0.0.1");
  set_env("TIDINGS_PORT", "0");
  set_env("TIDINGS_THREADS", "2");
  set_env("TIDINGS_SERVER_NAME", "env-name");
  set_env("TIDINGS_MAX_FRAME", "4KiB");
  set_env("TIDINGS_MAX_PENDING", "1MB");
  set_env("TIDINGS_WRITE_DEADLINE", "3s");
  set_env("TIDINGS_SLOW_CONSUMER", "drop");
  set_env("TIDINGS_MAX_CONNECTIONS", "7");
  set_env("TIDINGS_MAX_SUBSCRIPTIONS", "8");
  set_env("TIDINGS_PING_INTERVAL", "0s");
  set_env("TIDINGS_MAX_PINGS_OUT", "9");
  set_env("TIDINGS_AUTH_TIMEOUT", "100ms");
  set_env("TIDINGS_DRAIN_TIMEOUT", "1m");
  set_env("TIDINGS_LOG_LEVEL", "warn");
  set_env("TIDINGS_LOG_FORMAT", "json");
  const auto c = accepted(parse({}));
  EXPECT_EQ(c.host, "10.0.0.1");
  EXPECT_EQ(c.port, 0);
  EXPECT_EQ(c.threads, 2U);
  EXPECT_EQ(c.server_name, "env-name");
  EXPECT_EQ(c.max_frame, 4096U);
  EXPECT_EQ(c.max_pending, 1'000'000U);
  EXPECT_EQ(c.write_deadline, 3s);
  EXPECT_EQ(c.slow_consumer, slow_consumer_policy::drop);
  EXPECT_EQ(c.max_connections, 7U);
  EXPECT_EQ(c.max_subscriptions, 8U);
  EXPECT_EQ(c.ping_interval, 0ms);
  EXPECT_EQ(c.max_pings_out, 9U);
  EXPECT_EQ(c.auth_timeout, 100ms);
  EXPECT_EQ(c.drain_timeout, 1min);
  EXPECT_EQ(c.log_level, "warn");
  EXPECT_EQ(c.log_output, log_format::json);
}

TEST_F(ConfigTest, EmptyVariableIsIgnored) {
  set_env("TIDINGS_PORT", "");
  EXPECT_EQ(accepted(parse({})).port, 4700);
}

TEST_F(ConfigTest, BadVariableIsNamedInTheError) {
  set_env("TIDINGS_MAX_PENDING", "lots");
  expect_error(parse({}), "TIDINGS_MAX_PENDING: \"lots\"", "not a size");
}

TEST_F(ConfigTest, FlagOverridesABadVariable) {
  set_env("TIDINGS_PORT", "nope");
  EXPECT_EQ(accepted(parse({"--port", "1"})).port, 1);
}

// --- Config file --------------------------------------------------------------------------

TEST_F(ConfigTest, TomlStyleFileSetsEveryKey) {
  const auto path = write_file(R"(# tidingsd settings
host = "127.0.0.1"
port = 4800
threads = 4
server-name = "broker one"   # quoted: it has a blank
max-frame = "128KiB"
max-pending = "64MiB"
write-deadline = "5s"
slow-consumer = "drop"
max-connections = 1000
max-subscriptions = 100
ping-interval = "0s"
max-pings-out = 3
auth-timeout = "500ms"
drain-timeout = "10s"
log-level = "error"
log-format = "json"
)");
  const auto c = accepted(parse({"--config", path.c_str()}));
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.port, 4800);
  EXPECT_EQ(c.threads, 4U);
  EXPECT_EQ(c.server_name, "broker one");
  EXPECT_EQ(c.max_frame, 128U * 1024);
  EXPECT_EQ(c.max_pending, 64ULL * 1024 * 1024);
  EXPECT_EQ(c.write_deadline, 5s);
  EXPECT_EQ(c.slow_consumer, slow_consumer_policy::drop);
  EXPECT_EQ(c.max_connections, 1000U);
  EXPECT_EQ(c.max_subscriptions, 100U);
  EXPECT_EQ(c.ping_interval, 0ms);
  EXPECT_EQ(c.max_pings_out, 3U);
  EXPECT_EQ(c.auth_timeout, 500ms);
  EXPECT_EQ(c.drain_timeout, 10s);
  EXPECT_EQ(c.log_level, "error");
  EXPECT_EQ(c.log_output, log_format::json);
}

TEST_F(ConfigTest, IniStyleFileWithBareValues) {
  const auto path = write_file(R"(; tidingsd settings
[default]
port=4801
max_pending = 2MiB
log-level = debug
)");
  const auto c = accepted(parse({"--config", path.c_str()}));
  EXPECT_EQ(c.port, 4801);
  EXPECT_EQ(c.max_pending, 2U * 1024 * 1024);  // `max_pending` is accepted as `max-pending`
  EXPECT_EQ(c.log_level, "debug");
}

TEST_F(ConfigTest, ConfigFileFromTheEnvironment) {
  set_env("TIDINGS_CONFIG", write_file("port = 4802\n"));
  EXPECT_EQ(accepted(parse({})).port, 4802);
  // --config names another file and wins.
  const auto other = write_file("port = 4803\n");
  EXPECT_EQ(accepted(parse({"--config", other.c_str()})).port, 4803);
}

TEST_F(ConfigTest, MissingConfigFileExits2) {
  const auto path =
      (std::filesystem::temp_directory_path() / "tidings_config_test_does_not_exist.toml").string();
  expect_error(parse({"--config", path.c_str()}), "--config", "does not exist");
  set_env("TIDINGS_CONFIG", path);
  expect_error(parse({}), "TIDINGS_CONFIG", "does not exist");
  const auto dir = std::filesystem::temp_directory_path().string();
  expect_error(parse({"--config", dir.c_str()}), "--config", "is a directory");
}

TEST_F(ConfigTest, BadConfigFilesExit2) {
  const auto bad_value = write_file("max-pending = \"12XB\"\n");
  expect_error(parse({"--config", bad_value.c_str()}), bad_value + ": max-pending: \"12XB\"",
               "not a size");
  const auto unknown = write_file("max-pendng = 1MiB\n");
  expect_error(parse({"--config", unknown.c_str()}), "unknown key \"max-pendng\"",
               "long option names");
  const auto section = write_file("[server]\nport = 1\n");
  expect_error(parse({"--config", section.c_str()}), "\"server.port\"", "top level");
  const auto twice = write_file("port = 1\nhost = x\nport = 2\n");
  expect_error(parse({"--config", twice.c_str()}), "port", "set twice");
  const auto list = write_file("server-name = a b\n");
  expect_error(parse({"--config", list.c_str()}), "server-name", "expected one value");
  const auto nested = write_file("config = other.toml\n");
  expect_error(parse({"--config", nested.c_str()}), nested, "another config file");
  const auto no_unit = write_file("ping-interval = 30\n");
  expect_error(parse({"--config", no_unit.c_str()}), "ping-interval: \"30\"", "write a unit");
}

// --- Precedence: flags > environment > config file > defaults -----------------------------

TEST_F(ConfigTest, PrecedenceForOneOption) {
  const auto path = write_file("port = 1001\nwrite-deadline = \"1s\"\n");
  set_env("TIDINGS_CONFIG", path);
  set_env("TIDINGS_PORT", "1002");
  set_env("TIDINGS_WRITE_DEADLINE", "2s");

  const auto flag = accepted(parse({"--port", "1003", "--write-deadline", "3s"}));
  EXPECT_EQ(flag.port, 1003);  // flag beats environment and file
  EXPECT_EQ(flag.write_deadline, 3s);

  const auto env = accepted(parse({}));
  EXPECT_EQ(env.port, 1002);  // environment beats file
  EXPECT_EQ(env.write_deadline, 2s);

  ::unsetenv("TIDINGS_PORT");
  ::unsetenv("TIDINGS_WRITE_DEADLINE");
  const auto file = accepted(parse({}));
  EXPECT_EQ(file.port, 1001);  // file beats default
  EXPECT_EQ(file.write_deadline, 1s);

  ::unsetenv("TIDINGS_CONFIG");
  const auto defaults = accepted(parse({}));
  EXPECT_EQ(defaults.port, 4700);
  EXPECT_EQ(defaults.write_deadline, 10s);
}

TEST_F(ConfigTest, AllFourLevelsAtOnce) {
  const auto path =
      write_file("port = 2001\nthreads = 2\nmax-connections = 2\nmax-pings-out = 7\n");
  set_env("TIDINGS_PORT", "3001");
  set_env("TIDINGS_THREADS", "3");
  const auto c = accepted(parse({"--config", path.c_str(), "--port", "4001"}));
  EXPECT_EQ(c.port, 4001);                 // flag over env and file
  EXPECT_EQ(c.threads, 3U);                // env over file
  EXPECT_EQ(c.max_connections, 2U);        // file over default
  EXPECT_EQ(c.max_subscriptions, 65536U);  // default
  EXPECT_EQ(c.max_pings_out, 7U);
}

TEST_F(ConfigTest, CrossRuleUsesTheMergedValues) {
  // max-frame from the file, max-pending from the environment: together they break the rule.
  const auto path = write_file("max-frame = \"1MiB\"\n");
  set_env("TIDINGS_MAX_PENDING", "1MiB");
  expect_error(parse({"--config", path.c_str()}), "TIDINGS_MAX_PENDING", "at least max-frame");
  EXPECT_EQ(accepted(parse({"--config", path.c_str(), "--max-pending", "2MiB"})).max_pending,
            2U * 1024 * 1024);
}

// --- describe() and effective_threads() ---------------------------------------------------

TEST_F(ConfigTest, DescribeListsEverySettingWithUnits) {
  const auto pairs = described(config{});
  for (const char* key :
       {"host", "port", "threads", "server-name", "max-frame", "max-pending", "write-deadline",
        "slow-consumer", "max-connections", "max-subscriptions", "match-cache", "ping-interval",
        "max-pings-out", "auth-timeout", "drain-timeout", "log-level", "log-format"}) {
    EXPECT_TRUE(pairs.contains(key)) << key;
  }
  EXPECT_EQ(pairs.at("max-frame"), "1MiB");
  EXPECT_EQ(pairs.at("max-pending"), "64MiB");
  EXPECT_EQ(pairs.at("match-cache"), "4MiB");
  EXPECT_EQ(pairs.at("write-deadline"), "10s");
  EXPECT_EQ(pairs.at("ping-interval"), "30s");
  EXPECT_EQ(pairs.at("auth-timeout"), "2s");
  EXPECT_EQ(pairs.at("slow-consumer"), "close");
  EXPECT_EQ(pairs.at("log-format"), "text");
  EXPECT_EQ(pairs.at("threads"), std::to_string(config{}.effective_threads()));
}

TEST_F(ConfigTest, DescribeFormatsOddValues) {
  config c;
  c.max_frame = 1000;
  c.max_pending = 1049601;
  c.write_deadline = 250ms;
  c.ping_interval = 0ms;
  c.drain_timeout = 2min;
  c.auth_timeout = 1h;
  c.threads = 3;
  const auto pairs = described(c);
  EXPECT_EQ(pairs.at("max-frame"), "1000");
  EXPECT_EQ(pairs.at("max-pending"), "1049601");
  EXPECT_EQ(pairs.at("write-deadline"), "250ms");
  EXPECT_EQ(pairs.at("ping-interval"), "0s");
  EXPECT_EQ(pairs.at("drain-timeout"), "2m");
  EXPECT_EQ(pairs.at("auth-timeout"), "1h");
  EXPECT_EQ(pairs.at("threads"), "3");
}

TEST_F(ConfigTest, DescribedValuesParseBack) {
  const auto original =
      accepted(parse({"--max-frame", "1000", "--max-pending", "3MB", "--write-deadline", "1500ms",
                      "--ping-interval", "90s", "--threads", "5", "--slow-consumer", "drop"}));
  std::vector<std::string> args;
  for (const auto& [key, value] : describe(original)) {
    args.push_back("--" + key);
    args.push_back(value);
  }
  std::vector<const char*> argv{"tidingsd"};
  for (const auto& arg : args)
    argv.push_back(arg.c_str());
  const auto again = accepted(parse_command_line(static_cast<int>(argv.size()), argv.data()));
  EXPECT_EQ(describe(again), describe(original));
}

TEST(EffectiveThreads, ZeroMeansOnePerCore) {
  config c;
  c.threads = 0;
  const unsigned cores = std::thread::hardware_concurrency();
  EXPECT_EQ(c.effective_threads(), std::max(1U, cores));
  c.threads = 7;
  EXPECT_EQ(c.effective_threads(), 7U);
}

}  // namespace
