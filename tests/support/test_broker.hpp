#pragma once

// An in-process broker on 127.0.0.1 with an ephemeral port, run on its own thread for
// the lifetime of the object. The port is known before the server thread starts.

#include <cstdint>
#include <memory>
#include <thread>

#include "tidings/broker/config.hpp"
#include "tidings/broker/server.hpp"

namespace tidings::test {

class test_broker {
 public:
  // `settings.host` and `settings.port` are overridden: 127.0.0.1, and `port` (0: an
  // ephemeral one). A fixed port lets a test restart a broker where clients expect it.
  explicit test_broker(broker::config settings = default_settings(), std::uint16_t port = 0);
  ~test_broker();  // graceful stop, then join
  test_broker(const test_broker&) = delete;
  test_broker& operator=(const test_broker&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  broker::server& server() noexcept { return *server_; }
  // Graceful stop and join; idempotent.
  void stop();

  static broker::config default_settings();

 private:
  std::unique_ptr<broker::server> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

}  // namespace tidings::test
