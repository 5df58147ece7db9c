#pragma once

// The asynchronous client: one connection to tidingsd, driven by an Asio executor.
//
// Every asynchronous operation takes an Asio completion token (and copies its string
// arguments, so a stored awaitable never refers to a caller's temporary), so it works with
// callbacks, `asio::use_awaitable` (coroutines) and `asio::use_future`. Completion
// handlers are posted to their associated executor (by default the connection's).
// Message handlers and the callbacks in `options` run on the connection's executor.
//
// Thread safety: like an Asio socket, a connection is not thread-safe. Call it from its
// executor's thread (run the io_context on one thread, or give the connection a strand).
// subscription::unsubscribe() is the exception: it may be called from any thread.
// The blocking facade (blocking_client) is the thread-safe way to use it from
// ordinary code.
//
// Lifetime: destroying the connection closes it; pending operations complete with
// errc::closed.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tidings/asio.hpp"
#include "tidings/client/detail/completions.hpp"
#include "tidings/client/detail/unique_function.hpp"
#include "tidings/client/errors.hpp"
#include "tidings/client/message.hpp"
#include "tidings/client/options.hpp"

namespace tidings::client {

namespace detail {
class connection_impl;

// Adapts an Asio completion handler to the library's internal completion: the handler
// is posted to its associated executor, which is kept busy meanwhile.
template <class Handler>
status_completion adapt_status(const asio::any_io_executor& fallback, Handler&& handler) {
  auto executor = asio::get_associated_executor(handler, fallback);
  return [handler = std::forward<Handler>(handler),
          work = asio::make_work_guard(executor)](const error& failure) mutable {
    auto target = work.get_executor();
    asio::post(target, [handler = std::move(handler), code = failure.code]() mutable {
      std::move(handler)(code);
    });
    work.reset();
  };
}

template <class Handler>
request_completion adapt_request(const asio::any_io_executor& fallback, Handler&& handler) {
  auto executor = asio::get_associated_executor(handler, fallback);
  return [handler = std::forward<Handler>(handler), work = asio::make_work_guard(executor)](
             const error& failure, message reply) mutable {
    auto target = work.get_executor();
    asio::post(target, [handler = std::move(handler), code = failure.code,
                        reply = std::move(reply)]() mutable {
      std::move(handler)(code, std::move(reply));
    });
    work.reset();
  };
}
}  // namespace detail

namespace detail {
// publish_options with its strings owned: an operation may start after the caller's
// expression has ended (use_awaitable runs the initiation when the result is awaited), so
// the asynchronous operations pass their arguments to async_initiate by value.
struct owned_publish_options {
  explicit owned_publish_options(const publish_options& extra)
      : reply(extra.reply),
        headers(extra.headers != nullptr ? std::optional<header_list>(*extra.headers)
                                         : std::nullopt) {}
  publish_options view() const { return {reply, headers ? &*headers : nullptr}; }
  std::string reply;
  std::optional<header_list> headers;
};
}  // namespace detail

// A live subscription. unsubscribe() (or destruction) ends it; detach() lets it live as
// long as the connection. Movable, not copyable.
class subscription {
 public:
  subscription() = default;
  subscription(std::weak_ptr<detail::connection_impl> owner, std::uint64_t sid) noexcept
      : owner_(std::move(owner)), sid_(sid) {}
  ~subscription() { unsubscribe(); }
  subscription(subscription&& other) noexcept
      : owner_(std::move(other.owner_)), sid_(std::exchange(other.sid_, 0)) {}
  subscription& operator=(subscription&& other) noexcept;
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;

  // Ends the subscription and sends `unsub`; messages already on their way are not
  // delivered. Safe from any thread, and idempotent. When it returns, the handler is not
  // running (unless unsubscribe() was called from the handler itself, which then runs
  // to its end) and is never called again: a call from another thread waits for a
  // handler that is running at that moment to return. Do not call it while holding a
  // lock that the handler takes.
  void unsubscribe();
  void detach() noexcept { sid_ = 0; }
  std::uint64_t sid() const noexcept { return sid_; }
  explicit operator bool() const noexcept { return sid_ != 0; }

 private:
  std::weak_ptr<detail::connection_impl> owner_;
  std::uint64_t sid_ = 0;
};

enum class connection_state { idle, connecting, connected, reconnecting, draining, closed };

// What the server said in `info`.
struct server_info {
  std::string server;
  std::string version;
  std::uint64_t client_id = 0;
  std::uint64_t max_frame = 0;
  std::uint64_t max_pending = 0;
  std::uint64_t ping_interval_ms = 0;
  bool auth_required = false;
};

struct connection_statistics {
  std::uint64_t published = 0;           // pub frames accepted by publish()
  std::uint64_t delivered = 0;           // msg frames handed to handlers
  std::uint64_t reconnects = 0;          // successful reconnections
  std::uint64_t lost_on_disconnect = 0;  // bytes queued on a connection that broke
};

class connection {
 public:
  using executor_type = asio::any_io_executor;

  explicit connection(executor_type executor, options settings = {});
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  executor_type get_executor() const noexcept { return executor_; }

  // Connects, reads `info`, sends `connect` and waits for its `ok`. Signature:
  // void(error_code). A failed first connection is not retried; later losses are.
  template <class Token>
  auto async_connect(Token&& token) {
    return asio::async_initiate<Token, void(error_code)>(
        [this](auto handler) {
          start_connect(detail::adapt_status(executor_, std::move(handler)));
        },
        token);
  }

  // Fire-and-forget. Validates topic, reply, data and headers locally, so a mistake is
  // reported here and not as an asynchronous `err`. While reconnecting, the frame is
  // buffered (up to reconnect_buffer_bytes).
  error_code publish(std::string_view topic, std::string_view data,
                     const publish_options& extra = {});

  // Confirmed publish (the frame carries an `id`): completes on the server's `ok` or
  // `err`. Signature: void(error_code).
  template <class Token>
  auto async_publish(std::string_view topic, std::string_view data, const publish_options& extra,
                     Token&& token) {
    return asio::async_initiate<Token, void(error_code)>(
        [this](auto handler, const std::string& topic_copy, const std::string& data_copy,
               const detail::owned_publish_options& extra_copy) {
          publish_confirmed(topic_copy, data_copy, extra_copy.view(),
                            detail::adapt_status(executor_, std::move(handler)));
        },
        token, std::string(topic), std::string(data), detail::owned_publish_options(extra));
  }

  // Subscribes without waiting; a refusal arrives at options::on_error. Local
  // validation errors are thrown (exception).
  subscription subscribe(std::string_view pattern, message_handler handler,
                         const subscribe_options& extra = {});

  // Subscribes and waits for the server's answer. Signature:
  // void(error_code, subscription).
  template <class Token>
  auto async_subscribe(std::string_view pattern, message_handler handler,
                       const subscribe_options& extra, Token&& token) {
    return asio::async_initiate<Token, void(error_code, subscription)>(
        [this](auto completion, message_handler on_message, const std::string& pattern_copy,
               const std::string& queue, std::uint64_t max) {
          auto executor = asio::get_associated_executor(completion, executor_);
          auto sid = std::make_shared<std::uint64_t>(0);
          auto done = detail::adapt_status(
              executor_,
              asio::bind_executor(executor, [completion = std::move(completion), sid,
                                             owner = weak_impl()](error_code ec) mutable {
                std::move(completion)(ec, ec ? subscription{} : subscription{owner, *sid});
              }));
          *sid = subscribe_confirmed(pattern_copy, std::move(on_message),
                                     subscribe_options{queue, max}, std::move(done));
        },
        token, std::move(handler), std::string(pattern), std::string(extra.queue), extra.max);
  }

  // A ping/pong round trip: completes once the server has processed everything sent
  // before it. Signature: void(error_code); errc::timeout after `timeout`.
  template <class Token>
  auto async_flush(std::chrono::milliseconds timeout, Token&& token) {
    return asio::async_initiate<Token, void(error_code)>(
        [this, timeout](auto handler) {
          flush(timeout, detail::adapt_status(executor_, std::move(handler)));
        },
        token);
  }

  // Publishes `data` with a unique reply topic and waits for the first reply.
  // Signature: void(error_code, message). Fails at once with the server's
  // no_responders when nobody is subscribed, with errc::disconnected when the connection
  // that carried the request is lost, and with errc::timeout otherwise.
  template <class Token>
  auto async_request(std::string_view topic, std::string_view data,
                     std::chrono::milliseconds timeout, Token&& token,
                     const header_list* headers = nullptr) {
    return asio::async_initiate<Token, void(error_code, message)>(
        [this, timeout](auto handler, const std::string& topic_copy, const std::string& data_copy,
                        const std::optional<header_list>& headers_copy) {
          request(topic_copy, data_copy, timeout, headers_copy ? &*headers_copy : nullptr,
                  detail::adapt_request(executor_, std::move(handler)));
        },
        token, std::string(topic), std::string(data),
        headers != nullptr ? std::optional<header_list>(*headers) : std::nullopt);
  }

  // Stops receiving (unsubscribes everything), lets delivered messages' handlers finish,
  // flushes what was published, and closes. Signature: void(error_code).
  template <class Token>
  auto async_drain(std::chrono::milliseconds timeout, Token&& token) {
    return asio::async_initiate<Token, void(error_code)>(
        [this, timeout](auto handler) {
          drain(timeout, detail::adapt_status(executor_, std::move(handler)));
        },
        token);
  }

  // Completes when the unsent bytes have fallen below half of max_outbound_bytes (at
  // once if they already have): the back-pressure for errc::outbound_full.
  template <class Token>
  auto async_wait_writable(Token&& token) {
    return asio::async_initiate<Token, void(error_code)>(
        [this](auto handler) {
          wait_writable(detail::adapt_status(executor_, std::move(handler)));
        },
        token);
  }

  // Closes now: pending operations complete with errc::closed. Idempotent.
  void close();

  connection_state state() const noexcept;
  // Valid once connected.
  const server_info& info() const noexcept;
  const connection_statistics& statistics() const noexcept;
  // Bytes waiting to be written (connected) or buffered for the next connection.
  std::size_t pending_bytes() const noexcept;

  // The callback-taking forms behind the templates, for code that wants the server's
  // message with the error (the blocking client uses them).
  void start_connect(detail::status_completion done);
  void publish_confirmed(std::string_view topic, std::string_view data,
                         const publish_options& extra, detail::status_completion done);
  // Returns the sid (0 when the completion already reported a local error).
  std::uint64_t subscribe_confirmed(std::string_view pattern, message_handler handler,
                                    const subscribe_options& extra, detail::status_completion done);
  void flush(std::chrono::milliseconds timeout, detail::status_completion done);
  void request(std::string_view topic, std::string_view data, std::chrono::milliseconds timeout,
               const header_list* headers, detail::request_completion done);
  void drain(std::chrono::milliseconds timeout, detail::status_completion done);
  void wait_writable(detail::status_completion done);

 private:
  friend class blocking_client;
  std::weak_ptr<detail::connection_impl> weak_impl() const noexcept { return impl_; }

  executor_type executor_;
  std::shared_ptr<detail::connection_impl> impl_;
};

}  // namespace tidings::client
