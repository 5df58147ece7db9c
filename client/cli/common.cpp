#include "common.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tidings::cli {

std::string exit_codes_footer() {
  return "Exit codes: 0 ok, 1 error from the server or the connection, 2 usage error (bad\n"
         "arguments or invalid JSON), 3 timeout, 4 no responders.\n"
         "Durations: 500ms, 5s, 1.5s, 2m (units us, ms, s, m, h). The server is --server, else\n"
         "$TIDINGS_SERVER, else 127.0.0.1:4700. See docs/CLI.md.";
}

CLI::Validator positive_integer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::uint64_t value = 0;
        const auto* end = text.data() + text.size();
        const auto [next, error] = std::from_chars(text.data(), end, value);
        if (text.empty() || error != std::errc{} || next != end || value == 0) {
          return "'" + text + "' is not a whole number above 0";
        }
        return {};
      },
      "", "positive integer");
}

CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !(value > 0) ||
            !std::isfinite(value)) {
          return "'" + text + "' is not a number above 0";
        }
        return {};
      },
      "", "positive number");
}

void connection_flags::add_to(CLI::App& command) {
  const std::string group = "Connection";
  server_option_ = command
                       .add_option("-s,--server", server_,
                                   "Broker address HOST[:PORT] (default:\n$TIDINGS_SERVER, else "
                                   "127.0.0.1:4700)")
                       ->option_text("HOST:PORT")
                       ->group(group);
  command.add_option("--name", name_, "Client name sent to the server (in its debug log)")
      ->option_text("NAME")
      ->group(group);
  user_option_ = command.add_option("--user", user_, "User name (with --pass)")
                     ->option_text("USER")
                     ->group(group);
  pass_option_ = command.add_option("--pass", pass_, "Password (with --user)")
                     ->option_text("PASS")
                     ->group(group);
  token_option_ = command.add_option("--token", token_, "Authentication token")
                      ->option_text("TOKEN")
                      ->group(group);
}

connection_flags::target connection_flags::resolve(std::string_view command_name) const {
  std::optional<std::string> flag;
  if (server_option_ != nullptr && server_option_->count() > 0) flag = server_;
  const auto choice = resolve_server(flag, std::getenv("TIDINGS_SERVER"));

  const bool user = user_option_ != nullptr && user_option_->count() > 0;
  const bool pass = pass_option_ != nullptr && pass_option_->count() > 0;
  const bool token = token_option_ != nullptr && token_option_->count() > 0;
  if (user != pass) throw usage_error("--user and --pass go together");
  if (user && token) throw usage_error("give either --token or --user and --pass, not both");

  target result;
  result.address = format_address(choice.address);
  result.options.host = choice.address.host;
  result.options.port = choice.address.port;
  result.options.name = name_.empty() ? "tidings " + std::string(command_name) : name_;
  if (user) {
    result.options.user = user_;
    result.options.pass = pass_;
  }
  if (token) result.options.token = token_;
  // A command-line run is short: a lost connection is reported, not hidden behind
  // retries. The long-running commands (sub, reply) turn reconnection back on.
  result.options.reconnect.enabled = false;
  return result;
}

std::string describe(const client::error_code& code, std::string_view message) {
  if (client::is_server_error(code)) {
    std::string text = code.message();
    if (!message.empty()) text += ": " + std::string(message);
    return text;
  }
  const auto base = code.message();
  if (message.empty() || message == base) return base;
  if (message.find(base) != std::string_view::npos) return std::string(message);
  return base + " (" + std::string(message) + ")";
}

std::string describe(const client::exception& e) {
  return describe(e.code(), e.server_message());
}

int exit_code_for(const client::error_code& code) {
  if (code == client::errc::timeout) return exit_timeout;
  if (client::is_server_error(code) &&
      client::server_code(code) == protocol::error_code::no_responders) {
    return exit_no_responders;
  }
  return exit_error;
}

failure connect_failure(const std::string& address, const client::error_code& code,
                        std::string_view message) {
  if (code == client::errc::timeout) {
    return {exit_timeout, "cannot connect to " + address + ": timed out"};
  }
  // The system's words ("Connection refused") say it all; the library's message only
  // repeats the address.
  const auto why = client::is_server_error(code) ? describe(code, message) : code.message();
  return {exit_code_for(code), "cannot connect to " + address + ": " + why};
}

void write_line(std::string_view line) {
  const bool written = std::fwrite(line.data(), 1, line.size(), stdout) == line.size() &&
                       std::fputc('\n', stdout) != EOF && std::fflush(stdout) == 0;
  if (!written) {
    throw failure(exit_error, std::string("cannot write to stdout: ") + std::strerror(errno));
  }
}

}  // namespace tidings::cli
