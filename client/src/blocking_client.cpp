#include "tidings/client/blocking_client.hpp"

#include <future>
#include <stdexcept>

namespace tidings::client {
namespace {

// A little longer than the operation's own timeout, so that the operation's own
// errc::timeout (with its message) normally wins over the facade's.
constexpr std::chrono::milliseconds grace{500};

}  // namespace

blocking_client::blocking_client(options settings) : work_(asio::make_work_guard(io_)) {
  const auto connect_timeout = settings.connect_timeout;
  connection_ = std::make_unique<connection>(io_.get_executor(), std::move(settings));
  thread_ = std::thread([this] { io_.run(); });
  const error failure =
      run([this](detail::status_completion done) { connection_->start_connect(std::move(done)); },
          connect_timeout);
  if (failure) {
    close();
    throw exception(failure);
  }
}

blocking_client::~blocking_client() {
  close();
}

void blocking_client::check_not_on_client_thread(const char* what) const {
  if (std::this_thread::get_id() == thread_.get_id()) {
    throw std::logic_error(std::string("tidings::client::blocking_client::") + what +
                           " called from a message handler would wait for itself");
  }
}

template <class Operation>
error blocking_client::run(Operation&& operation, std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<error>>();
  auto result = promise->get_future();
  asio::post(io_, [&operation, promise]() mutable {
    operation(detail::status_completion(
        [promise](const error& failure) { promise->set_value(failure); }));
  });
  // `operation` is referenced by the posted function: wait for it to have run at least.
  if (result.wait_for(timeout + grace) != std::future_status::ready) {
    return error{make_error_code(errc::timeout), {}};
  }
  return result.get();
}

template <class Function>
auto blocking_client::call(Function&& function) {
  using result_type = decltype(function());
  if (std::this_thread::get_id() == thread_.get_id()) return function();
  std::packaged_task<result_type()> task(std::forward<Function>(function));
  auto result = task.get_future();
  asio::post(io_, [&task] { task(); });
  return result.get();
}

void blocking_client::publish(std::string_view topic, std::string_view data,
                              const publish_options& extra) {
  for (;;) {
    const auto ec = call([&] { return connection_->publish(topic, data, extra); });
    if (!ec) return;
    if (ec != make_error_code(errc::outbound_full) ||
        std::this_thread::get_id() == thread_.get_id()) {
      throw exception(error{ec, {}});
    }
    if (const auto failure = run(
            [this](detail::status_completion done) { connection_->wait_writable(std::move(done)); },
            std::chrono::hours(24))) {
      throw exception(failure);
    }
  }
}

void blocking_client::publish_confirmed(std::string_view topic, std::string_view data,
                                        const publish_options& extra,
                                        std::chrono::milliseconds timeout) {
  check_not_on_client_thread("publish_confirmed");
  if (const auto failure = run(
          [&](detail::status_completion done) {
            connection_->publish_confirmed(topic, data, extra, std::move(done));
          },
          timeout)) {
    throw exception(failure);
  }
}

subscription blocking_client::subscribe(std::string_view pattern, message_handler handler,
                                        const subscribe_options& extra,
                                        std::chrono::milliseconds timeout) {
  check_not_on_client_thread("subscribe");
  std::uint64_t sid = 0;
  const auto failure = run(
      [&](detail::status_completion done) {
        sid = connection_->subscribe_confirmed(pattern, std::move(handler), extra, std::move(done));
      },
      timeout);
  if (failure) {
    if (sid != 0) call([&] { subscription(connection_->weak_impl(), sid).unsubscribe(); });
    throw exception(failure);
  }
  return subscription{connection_->weak_impl(), sid};
}

message blocking_client::request(std::string_view topic, std::string_view data,
                                 std::chrono::milliseconds timeout, const header_list* headers) {
  check_not_on_client_thread("request");
  auto promise = std::make_shared<std::promise<std::pair<error, message>>>();
  auto result = promise->get_future();
  asio::post(io_, [&, promise] {
    connection_->request(
        topic, data, timeout, headers,
        detail::request_completion([this, promise](const error& failure, message reply) {
          asio::post(io_, [promise, failure, reply = std::move(reply)]() mutable {
            promise->set_value({failure, std::move(reply)});
          });
        }));
  });
  if (result.wait_for(timeout + grace) != std::future_status::ready) {
    throw exception(error{make_error_code(errc::timeout), "no reply in time"});
  }
  auto [failure, reply] = result.get();
  if (failure) throw exception(failure);
  return std::move(reply);
}

void blocking_client::flush(std::chrono::milliseconds timeout) {
  check_not_on_client_thread("flush");
  if (const auto failure =
          run([&](detail::status_completion done) { connection_->flush(timeout, std::move(done)); },
              timeout)) {
    throw exception(failure);
  }
}

void blocking_client::drain(std::chrono::milliseconds timeout) {
  check_not_on_client_thread("drain");
  if (const auto failure =
          run([&](detail::status_completion done) { connection_->drain(timeout, std::move(done)); },
              timeout)) {
    throw exception(failure);
  }
}

void blocking_client::close() {
  if (!thread_.joinable()) return;
  if (std::this_thread::get_id() == thread_.get_id()) {
    connection_->close();
    return;
  }
  call([this] { connection_->close(); });
  work_.reset();
  thread_.join();
}

connection_state blocking_client::state() {
  if (!thread_.joinable()) return connection_state::closed;
  return call([this] { return connection_->state(); });
}

server_info blocking_client::info() {
  if (!thread_.joinable()) return connection_->info();
  return call([this] { return connection_->info(); });
}

}  // namespace tidings::client
