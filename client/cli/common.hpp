#pragma once

// What every subcommand shares: the connection options, turning them into client
// options, error wording and exit codes, and awaiting the library's callback-taking
// operations from a coroutine without losing the server's message.

#include <memory>
#include <string>
#include <string_view>

#include "cli11.hpp"

#include "helpers.hpp"
#include "tidings/asio.hpp"
#include "tidings/client/connection.hpp"

namespace tidings::cli {

// A subcommand: its options are bound to the object's members while parsing; run()
// happens after a successful parse and returns the exit code (or throws failure).
class command {
 public:
  virtual ~command() = default;
  virtual int run() = 0;
  CLI::App* subcommand() const noexcept { return subcommand_; }
  // What the one-line description leaves out, shown at the end of the command's --help.
  const std::string& details() const noexcept { return details_; }

 protected:
  CLI::App* subcommand_ = nullptr;
  std::string details_;
};

std::unique_ptr<command> add_pub_command(CLI::App& app);
std::unique_ptr<command> add_sub_command(CLI::App& app);
std::unique_ptr<command> add_reply_command(CLI::App& app);
std::unique_ptr<command> add_req_command(CLI::App& app);
std::unique_ptr<command> add_ping_command(CLI::App& app);
std::unique_ptr<command> add_bench_command(CLI::App& app);

// Validators with messages a person can read (CLI11's PositiveNumber names the range
// up to DBL_MAX in full).
CLI::Validator positive_integer();
CLI::Validator positive_number();

// The exit codes, for every --help footer.
std::string exit_codes_footer();

// --server, --name, --user, --pass, --token.
class connection_flags {
 public:
  void add_to(CLI::App& command);

  // The server to use and client options to reach it (name and credentials set).
  // Throws usage_error for a malformed address or inconsistent credentials.
  struct target {
    client::options options;
    std::string address;  // "host:port", for messages
  };
  target resolve(std::string_view command_name) const;

 private:
  std::string server_;
  std::string name_;
  std::string user_;
  std::string pass_;
  std::string token_;
  CLI::Option* server_option_ = nullptr;
  CLI::Option* user_option_ = nullptr;
  CLI::Option* pass_option_ = nullptr;
  CLI::Option* token_option_ = nullptr;
};

// The error in words: the server's code and message, or the local condition.
std::string describe(const client::error_code& code, std::string_view message);
std::string describe(const client::exception& e);
// exit_timeout, exit_no_responders or exit_error.
int exit_code_for(const client::error_code& code);

// "cannot connect to ADDRESS: WHY", with the exit code that goes with it.
failure connect_failure(const std::string& address, const client::error_code& code,
                        std::string_view message);

// Awaits one of connection's callback-taking operations (start_connect, flush, ...):
// `start` receives the completion to pass on. Unlike the token-based templates, the
// result keeps the server's human-readable message.
template <class Start>
asio::awaitable<client::error> await_status(Start start) {
  auto executor = co_await asio::this_coro::executor;
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(client::error)>(
      [executor, start = std::move(start)](auto handler) mutable {
        start(client::detail::status_completion(
            [executor, handler = std::move(handler)](const client::error& result) mutable {
              // The library may complete inline; resuming the coroutine from inside its
              // own call would re-enter it.
              asio::post(executor, [handler = std::move(handler), result]() mutable {
                std::move(handler)(result);
              });
            }));
      },
      asio::use_awaitable);
}

// Writes `line` and a newline to stdout and flushes, so that a consumer of a pipe sees
// each message at once. Throws failure when stdout is gone.
void write_line(std::string_view line);

}  // namespace tidings::cli
