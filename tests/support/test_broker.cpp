#include "test_broker.hpp"

#include <spdlog/spdlog.h>

namespace tidings::test {

broker::config test_broker::default_settings() {
  broker::config settings;
  settings.threads = 2;
  settings.log_level = "warn";
  return settings;
}

test_broker::test_broker(broker::config settings, std::uint16_t port) {
  // The daemon's main applies the level; an in-process broker has to do it here.
  spdlog::set_level(spdlog::level::from_str(settings.log_level));
  settings.host = "127.0.0.1";
  settings.port = port;
  server_ = std::make_unique<broker::server>(settings);
  server_->listen();
  port_ = server_->local_endpoint().port();
  thread_ = std::thread([this] { server_->run(); });
}

test_broker::~test_broker() {
  stop();
}

void test_broker::stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace tidings::test
