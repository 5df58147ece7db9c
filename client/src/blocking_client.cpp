#include "tidings/client/blocking_client.hpp"

#include <future>
#include <optional>
#include <stdexcept>
#include <utility>

namespace tidings::client {
namespace {

// A little longer than the operation's own timeout, so that the operation's own
// errc::timeout (with its message) normally wins over the facade's.
constexpr std::chrono::milliseconds grace{500};

// Waits for a result the client's thread delivers; nullopt after `limit`. A promise
// abandoned without a value (the io_context went away with the posted function) counts as
// the connection being closed.
template <class T>
std::optional<T> wait_result(std::future<T>& result, std::chrono::milliseconds limit) {
  if (result.wait_for(limit) != std::future_status::ready) return std::nullopt;
  try {
    return result.get();
  } catch (const std::future_error&) {
    if constexpr (std::is_same_v<T, error>) {
      return error{make_error_code(errc::closed), {}};
    } else {
      return T{error{make_error_code(errc::closed), {}}, {}};
    }
  }
}

}  // namespace

struct blocking_client::shared_state {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{asio::make_work_guard(io)};
  std::unique_ptr<connection> conn;
};

blocking_client::blocking_client(options settings) : state_(std::make_shared<shared_state>()) {
  const auto connect_timeout = settings.connect_timeout;
  state_->conn = std::make_unique<connection>(state_->io.get_executor(), std::move(settings));
  // The thread owns the state too: when a handler destroys this object, the thread
  // finishes the handler, runs out of work and releases the state itself.
  thread_ = std::thread([state = state_] { state->io.run(); });
  thread_id_ = thread_.get_id();
  const error failure = run(
      [](connection& conn, detail::status_completion done) { conn.start_connect(std::move(done)); },
      connect_timeout);
  if (failure) {
    close();
    throw exception(failure);
  }
}

blocking_client::~blocking_client() {
  if (thread_.joinable() && on_client_thread()) {
    // Destroyed by one of its own handlers: the thread cannot join itself, and the
    // io_context it is running must outlive this call.
    state_->conn->close();
    state_->work.reset();
    thread_.detach();
    return;
  }
  close();
}

void blocking_client::check_not_on_client_thread(const char* what) const {
  if (on_client_thread()) {
    throw std::logic_error(std::string("tidings::client::blocking_client::") + what +
                           " called from a message handler would wait for itself");
  }
}

error blocking_client::run(operation op, std::chrono::milliseconds timeout) {
  // After close() nothing runs the io_context any more.
  if (!thread_.joinable()) return error{make_error_code(errc::closed), {}};
  auto promise = std::make_shared<std::promise<error>>();
  auto result = promise->get_future();
  asio::post(state_->io, [state = state_, op = std::move(op), promise]() mutable {
    op(*state->conn,
       detail::status_completion([promise](const error& failure) { promise->set_value(failure); }));
  });
  // After a timeout the posted function may still run, later: it refers only to what it
  // owns (the state, the operation's copies, the promise).
  if (auto failure = wait_result(result, timeout + grace)) return *failure;
  return error{make_error_code(errc::timeout), {}};
}

template <class Function>
auto blocking_client::call(Function&& function) {
  using result_type = decltype(function());
  // On the client's thread, or once the thread has ended (nothing else touches the
  // connection then), directly.
  if (on_client_thread() || !thread_.joinable()) return function();
  // The caller waits until the task has run, so references to its stack stay valid.
  std::packaged_task<result_type()> task(std::forward<Function>(function));
  auto result = task.get_future();
  asio::post(state_->io, [&task] { task(); });
  return result.get();
}

void blocking_client::publish(std::string_view topic, std::string_view data,
                              const publish_options& extra) {
  for (;;) {
    const auto ec = call([&] { return state_->conn->publish(topic, data, extra); });
    if (!ec) return;
    if (ec != make_error_code(errc::outbound_full) || on_client_thread()) {
      throw exception(error{ec, {}});
    }
    if (const auto failure =
            run([](connection& conn,
                   detail::status_completion done) { conn.wait_writable(std::move(done)); },
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
          [topic = std::string(topic), data = std::string(data),
           extra = detail::owned_publish_options(extra)](connection& conn,
                                                         detail::status_completion done) {
            conn.publish_confirmed(topic, data, extra.view(), std::move(done));
          },
          timeout)) {
    throw exception(failure);
  }
}

subscription blocking_client::subscribe(std::string_view pattern, message_handler handler,
                                        const subscribe_options& extra,
                                        std::chrono::milliseconds timeout) {
  check_not_on_client_thread("subscribe");
  // Written on the client's thread; read here only after a success, which the promise's
  // value makes visible.
  auto sid = std::make_shared<std::uint64_t>(0);
  const auto failure = run(
      [sid, pattern = std::string(pattern), handler = std::move(handler),
       queue = std::string(extra.queue),
       max = extra.max](connection& conn, detail::status_completion done) mutable {
        *sid = conn.subscribe_confirmed(pattern, std::move(handler), subscribe_options{queue, max},
                                        std::move(done));
      },
      timeout);
  if (failure) {
    // The subscription may still be made, or confirmed, after this call gave up: end it on
    // the client's thread, after the posted subscribe (posts run in order).
    asio::post(state_->io, [sid, weak = state_->conn->weak_impl()] {
      if (*sid != 0) subscription(weak, *sid).unsubscribe();
    });
    throw exception(failure);
  }
  return subscription{state_->conn->weak_impl(), *sid};
}

message blocking_client::request(std::string_view topic, std::string_view data,
                                 std::chrono::milliseconds timeout, const header_list* headers) {
  check_not_on_client_thread("request");
  using outcome = std::pair<error, message>;
  auto promise = std::make_shared<std::promise<outcome>>();
  auto result = promise->get_future();
  // Copies: the request may start after this call has timed out and returned.
  asio::post(state_->io, [state = state_, topic = std::string(topic), data = std::string(data),
                          headers = headers != nullptr ? std::optional<header_list>(*headers)
                                                       : std::nullopt,
                          timeout, promise] {
    state->conn->request(topic, data, timeout, headers ? &*headers : nullptr,
                         detail::request_completion([promise](const error& failure, message reply) {
                           promise->set_value({failure, std::move(reply)});
                         }));
  });
  auto answer = wait_result(result, timeout + grace);
  if (!answer) throw exception(error{make_error_code(errc::timeout), "no reply in time"});
  auto& [failure, reply] = *answer;
  if (failure) throw exception(failure);
  return std::move(reply);
}

void blocking_client::flush(std::chrono::milliseconds timeout) {
  check_not_on_client_thread("flush");
  if (const auto failure =
          run([timeout](connection& conn,
                        detail::status_completion done) { conn.flush(timeout, std::move(done)); },
              timeout)) {
    throw exception(failure);
  }
}

void blocking_client::drain(std::chrono::milliseconds timeout) {
  check_not_on_client_thread("drain");
  if (const auto failure =
          run([timeout](connection& conn,
                        detail::status_completion done) { conn.drain(timeout, std::move(done)); },
              timeout)) {
    throw exception(failure);
  }
}

void blocking_client::close() {
  if (!thread_.joinable()) return;
  if (on_client_thread()) {
    state_->conn->close();
    return;
  }
  call([this] { state_->conn->close(); });
  state_->work.reset();
  thread_.join();
}

connection_state blocking_client::state() {
  if (!thread_.joinable()) return connection_state::closed;
  return call([this] { return state_->conn->state(); });
}

server_info blocking_client::info() {
  return call([this] { return state_->conn->info(); });
}

}  // namespace tidings::client
