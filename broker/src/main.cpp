// tidingsd: the Tidings broker daemon.

#include <sys/resource.h>

#include <cstdio>
#include <exception>
#include <string>

#include <spdlog/spdlog.h>

#include "tidings/broker/config.hpp"
#include "tidings/broker/logging.hpp"
#include "tidings/broker/server.hpp"

namespace {

// Every connection is a descriptor: take the hard limit so max_connections can be met.
void raise_descriptor_limit(std::uint32_t wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur < wanted + 64U) {
    spdlog::warn("open-file limit is {}: fewer than max_connections {} can be served",
                 limit.rlim_cur, wanted);
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto outcome = tidings::broker::parse_command_line(argc, argv);
  if (!outcome.settings) {
    std::fputs(outcome.message.c_str(), outcome.exit_code == 0 ? stdout : stderr);
    if (!outcome.message.empty() && outcome.message.back() != '\n') {
      std::fputc('\n', outcome.exit_code == 0 ? stdout : stderr);
    }
    return outcome.exit_code;
  }
  const auto& settings = *outcome.settings;
  try {
    tidings::broker::setup_logging(settings.log_level, settings.log_output);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tidingsd: --log-level: %s\n", e.what());
    return 2;
  }

  try {
    std::string effective;
    for (const auto& [key, value] : tidings::broker::describe(settings)) {
      effective += (effective.empty() ? "" : " ") + key + "=" + value;
    }
    spdlog::info("tidingsd " TIDINGS_VERSION " starting: {}", effective);
    raise_descriptor_limit(settings.max_connections);

    tidings::broker::server server(settings);
    server.listen();
    server.handle_signals();
    const auto endpoint = server.local_endpoint();
    spdlog::info("ready: listening on {}:{}", endpoint.address().to_string(), endpoint.port());
    server.run();
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
