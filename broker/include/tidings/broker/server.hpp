#pragma once

// The server: a listener, N event loops with the sessions spread across them, the
// shared subscription index, limits, and the graceful stop.
//
// Stop: close the listener, ask every session to drain (flush, `shutting_down`, close),
// and stop the loops once none is left or the drain timeout has passed.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tidings/asio.hpp"
#include "tidings/broker/config.hpp"
#include "tidings/broker/event_loop.hpp"
#include "tidings/broker/server_context.hpp"

namespace tidings::broker {

class server {
 public:
  explicit server(const config& settings);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and listens. Throws std::runtime_error naming the address and the cause.
  void listen();
  tcp::endpoint local_endpoint() const;

  // SIGINT/SIGTERM: the first starts a graceful stop, a second exits the process at once.
  void handle_signals();

  // Runs every event loop (the calling thread runs the first) until the server stops.
  void run();

  // Starts a graceful stop. Thread-safe; later calls do nothing.
  void stop();

  const server_stats& stats() const noexcept { return context_.stats; }
  // Messages published and deliveries made, summed over the event loops.
  std::uint64_t messages_published() const noexcept;
  std::uint64_t messages_delivered() const noexcept;
  std::uint32_t connections() const noexcept { return context_.active_connections.load(); }
  const subscription_index& index() const noexcept { return context_.index; }

 private:
  void accept_next();
  void open_session(event_loop& loop, tcp::socket socket);
  void schedule_sweep(event_loop& loop);
  void begin_stop();
  void check_drained();
  void finish_stop();

  server_context context_;
  std::vector<std::unique_ptr<event_loop>> loops_;
  event_loop& main_loop_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_;
  asio::steady_timer drain_timer_;
  std::optional<asio::signal_set> signals_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::size_t next_loop_ = 0;
  std::atomic<std::uint64_t> live_sessions_{0};
  std::atomic<bool> stopping_{false};
  bool stop_started_ = false;   // main loop only
  bool stop_finished_ = false;  // main loop only
};

}  // namespace tidings::broker
