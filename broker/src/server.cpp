#include "tidings/broker/server.hpp"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "tidings/broker/session.hpp"

namespace tidings::broker {
namespace {

std::string to_string(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  return (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
         std::to_string(endpoint.port());
}

}  // namespace

server::server(const config& settings)
    : context_(settings),
      loops_([&] {
        std::vector<std::unique_ptr<event_loop>> loops;
        for (unsigned i = 0; i < settings.effective_threads(); ++i) {
          loops.push_back(std::make_unique<event_loop>(context_.index));
        }
        return loops;
      }()),
      main_loop_(*loops_.front()),
      acceptor_(main_loop_.io),
      accept_retry_(main_loop_.io),
      drain_timer_(main_loop_.io) {
  context_.on_session_closed = [this] {
    live_sessions_.fetch_sub(1, std::memory_order_acq_rel);
    if (stopping_.load(std::memory_order_acquire)) {
      asio::post(main_loop_.io, [this] { check_drained(); });
    }
  };
}

server::~server() = default;

void server::listen() {
  const auto& settings = context_.settings;
  boost::system::error_code ec;
  tcp::resolver resolver(main_loop_.io);
  const auto results =
      resolver.resolve(settings.host, std::to_string(settings.port),
                       tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    throw std::runtime_error("cannot listen on " + settings.host + ":" +
                             std::to_string(settings.port) +
                             ": cannot resolve host: " + ec.message());
  }
  const tcp::endpoint endpoint = results.begin()->endpoint();
  auto fail = [&](const char* step) {
    throw std::runtime_error("cannot listen on " + to_string(endpoint) + ": " + step + ": " +
                             ec.message());
  };
  if (acceptor_.open(endpoint.protocol(), ec); ec) fail("socket");
  if (acceptor_.set_option(tcp::acceptor::reuse_address(true), ec); ec) fail("SO_REUSEADDR");
  if (acceptor_.bind(endpoint, ec); ec) fail("bind");
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec); ec) fail("listen");
}

tcp::endpoint server::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

void server::handle_signals() {
  signals_.emplace(main_loop_.io, SIGINT, SIGTERM);
  signals_->async_wait([this](const boost::system::error_code& ec, int signal_number) {
    if (ec) return;
    spdlog::info("received {}: stopping gracefully (send it again to exit at once)",
                 signal_number == SIGINT ? "SIGINT" : "SIGTERM");
    begin_stop();
    signals_->async_wait([](const boost::system::error_code& again, int second) {
      if (again) return;
      spdlog::warn("second signal: exiting without draining");
      spdlog::default_logger()->flush();
      std::_Exit(128 + second);
    });
  });
}

void server::run() {
  for (auto& loop : loops_) {
    work_.push_back(asio::make_work_guard(loop->io));
    asio::post(loop->io, [this, l = loop.get()] { schedule_sweep(*l); });
  }
  asio::post(main_loop_.io, [this] { accept_next(); });
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < loops_.size(); ++i) {
    threads.emplace_back([loop = loops_[i].get()] { loop->io.run(); });
  }
  main_loop_.io.run();
  for (auto& thread : threads)
    thread.join();
}

void server::stop() {
  asio::post(main_loop_.io, [this] { begin_stop(); });
}

void server::accept_next() {
  if (stop_started_) return;
  event_loop& loop = *loops_[next_loop_];
  next_loop_ = (next_loop_ + 1) % loops_.size();
  acceptor_.async_accept(
      loop.io, [this, &loop](const boost::system::error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || stop_started_) return;
        if (ec) {
          // Out of descriptors or memory: back off instead of spinning on the error.
          spdlog::warn("accept failed: {}; retrying in 100ms", ec.message());
          accept_retry_.expires_after(std::chrono::milliseconds(100));
          accept_retry_.async_wait([this](const boost::system::error_code& wait_ec) {
            if (!wait_ec) accept_next();
          });
          return;
        }
        context_.stats.connections_accepted.fetch_add(1, std::memory_order_relaxed);
        live_sessions_.fetch_add(1, std::memory_order_acq_rel);
        asio::post(loop.io, [this, &loop, s = std::move(socket)]() mutable {
          open_session(loop, std::move(s));
        });
        accept_next();
      });
}

void server::open_session(event_loop& loop, tcp::socket socket) {
  const auto id = context_.next_client_id.fetch_add(1, std::memory_order_relaxed);
  auto created = std::make_shared<session>(context_, loop, std::move(socket), id);
  if (stopping_.load(std::memory_order_acquire)) {
    // Accepted just before the stop: greeted and drained at once, and never counted
    // among the active connections, so its close must not give one back.
    created->start(false);
    created->drain();
    loop.batch.flush();
    return;
  }
  const auto limit = context_.settings.max_connections;
  if (context_.active_connections.fetch_add(1, std::memory_order_acq_rel) >= limit) {
    context_.active_connections.fetch_sub(1, std::memory_order_acq_rel);
    context_.stats.connections_refused.fetch_add(1, std::memory_order_relaxed);
    created->refuse();
    return;
  }
  created->start(true);
}

void server::schedule_sweep(event_loop& loop) {
  loop.sweep_timer.expires_after(context_.sweep_interval);
  loop.sweep_timer.async_wait([this, &loop](const boost::system::error_code& ec) {
    if (ec) return;
    const auto now = session::clock::now();
    loop.for_each_session([now](const std::shared_ptr<session>& s) { s->tick(now); });
    schedule_sweep(loop);
  });
}

void server::begin_stop() {
  if (stop_started_) return;
  stop_started_ = true;
  stopping_.store(true, std::memory_order_release);
  boost::system::error_code ec;
  acceptor_.close(ec);
  accept_retry_.cancel();
  const auto timeout = context_.settings.drain_timeout;
  spdlog::info("draining {} connections (timeout {}ms)", live_sessions_.load(), timeout.count());
  for (auto& loop : loops_) {
    asio::post(loop->io, [l = loop.get()] {
      l->for_each_session([](const std::shared_ptr<session>& s) { s->drain(); });
    });
  }
  drain_timer_.expires_after(timeout);
  drain_timer_.async_wait([this](const boost::system::error_code& wait_ec) {
    if (wait_ec) return;
    spdlog::warn("drain timeout: closing {} remaining connections", live_sessions_.load());
    for (auto& loop : loops_) {
      asio::post(loop->io, [l = loop.get()] {
        l->for_each_session(
            [](const std::shared_ptr<session>& s) { s->abort(close_reason::drain_timeout); });
      });
    }
  });
  check_drained();
}

void server::check_drained() {
  if (stop_started_ && live_sessions_.load(std::memory_order_acquire) == 0) finish_stop();
}

void server::finish_stop() {
  if (stop_finished_) return;
  stop_finished_ = true;
  drain_timer_.cancel();
  if (signals_) signals_->cancel();
  for (auto& loop : loops_) {
    asio::post(loop->io, [l = loop.get()] { l->sweep_timer.cancel(); });
  }
  work_.clear();
  for (auto& loop : loops_)
    loop->io.stop();
  const auto& stats = context_.stats;
  spdlog::info(
      "stopped: {} connections served ({} refused), {} messages published, {} deliveries, "
      "{} slow consumers cut, {} messages dropped",
      stats.connections_accepted.load(), stats.connections_refused.load(), messages_published(),
      messages_delivered(), stats.slow_consumers.load(), stats.messages_dropped.load());
}

std::uint64_t server::messages_published() const noexcept {
  std::uint64_t total = 0;
  for (const auto& loop : loops_)
    total += loop->route.published();
  return total;
}

std::uint64_t server::messages_delivered() const noexcept {
  std::uint64_t total = 0;
  for (const auto& loop : loops_)
    total += loop->route.delivered();
  return total;
}

}  // namespace tidings::broker
