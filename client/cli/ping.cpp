// tidings ping: is the broker up and answering? (Docker's HEALTHCHECK uses it.)

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include "common.hpp"
#include "tidings/client/blocking_client.hpp"

namespace tidings::cli {
namespace {

class ping_command final : public command {
 public:
  explicit ping_command(CLI::App& app) {
    subcommand_ = app.add_subcommand("ping", "Check that the server answers (health check)");
    details_ =
        "Connects, makes one ping/pong round trip, and prints the server's name, version,\n"
        "our client id and the round-trip time. Exits 0 when the server answered in time.\n"
        "Example (Docker):\n"
        "  HEALTHCHECK CMD tidings ping --timeout 2s";
    auto& c = *subcommand_;
    c.add_option("-t,--timeout", timeout_text_,
                 "Longest wait for the connection, and then for\nthe pong [2s]")
        ->option_text("DURATION");
    flags_.add_to(c);
  }

  int run() override {
    const auto timeout = parse_duration(timeout_text_, "--timeout");
    auto target = flags_.resolve("ping");
    target.options.connect_timeout = timeout;
    // The one round trip below is the check; background pings would only add noise.
    target.options.ping_interval = std::chrono::milliseconds{0};
    std::optional<client::blocking_client> client;
    try {
      client.emplace(std::move(target.options));
    } catch (const client::exception& e) {
      if (e.code() == client::errc::timeout) {
        throw failure(exit_timeout, "cannot connect to " + target.address + ": no answer within " +
                                        timeout_text_);
      }
      throw connect_failure(target.address, e.code(), e.server_message());
    }

    const auto start = std::chrono::steady_clock::now();
    try {
      client->flush(timeout);
    } catch (const client::exception& e) {
      if (e.code() == client::errc::timeout) {
        throw failure(exit_timeout, "no pong from " + target.address + " within " + timeout_text_);
      }
      throw failure(exit_code_for(e.code()),
                    "ping to " + target.address + " failed: " + describe(e));
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    const auto info = client->info();
    const double ms = std::chrono::duration<double, std::milli>(elapsed).count();
    std::printf("pong from %s %s (client_id %llu) in %.2f ms\n", info.server.c_str(),
                info.version.c_str(), static_cast<unsigned long long>(info.client_id), ms);
    std::fflush(stdout);
    return exit_ok;
  }

 private:
  std::string timeout_text_ = "2s";
  connection_flags flags_;
};

}  // namespace

std::unique_ptr<command> add_ping_command(CLI::App& app) {
  return std::make_unique<ping_command>(app);
}

}  // namespace tidings::cli
