#pragma once

// The blocking facade: a connection running on its own thread, for programs without an
// event loop. Every method may be called from any thread and blocks until the operation
// is done, throwing tidings::client::exception on failure (with the server's code and
// message).
//
// Message handlers and the callbacks in `options` run on the client's own thread, one
// at a time. A handler may publish, but must not call a method that waits for the
// server (flush, request, a confirmed publish, subscribe, drain): that thread is the one
// that would receive the answer, so such calls throw std::logic_error there. A handler may
// close the client, and may destroy it: the thread then finishes on its own.
//
// A call that gives up (its timeout passed) leaves nothing behind that refers to the
// caller: the operation owns copies of its arguments, and a subscription whose answer
// came too late is ended.

#include <chrono>
#include <functional>
#include <memory>
#include <string_view>
#include <thread>

#include "tidings/client/connection.hpp"

namespace tidings::client {

class blocking_client {
 public:
  // Connects (throws on failure).
  explicit blocking_client(options settings);
  // Closes and joins the thread; from a handler, closes and lets the thread end by itself.
  ~blocking_client();
  blocking_client(const blocking_client&) = delete;
  blocking_client& operator=(const blocking_client&) = delete;

  // Fire-and-forget. Waits while the outbound buffer is full instead of failing.
  void publish(std::string_view topic, std::string_view data, const publish_options& extra = {});
  // Waits for the server's `ok`.
  void publish_confirmed(std::string_view topic, std::string_view data,
                         const publish_options& extra = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits for the server's `ok`; the handler runs on the client's thread.
  subscription subscribe(std::string_view pattern, message_handler handler,
                         const subscribe_options& extra = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));
  message request(std::string_view topic, std::string_view data, std::chrono::milliseconds timeout,
                  const header_list* headers = nullptr);
  void flush(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void drain(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void close();

  connection_state state();
  server_info info();

 private:
  // The io_context, the connection and the work guard, shared with the client's thread:
  // they outlive a blocking_client destroyed by one of its own handlers.
  struct shared_state;
  using operation = std::function<void(connection&, detail::status_completion)>;

  // Runs `op` on the client's thread and waits for its completion, at most `timeout`
  // (plus a little). `op` is owned by the posted function: it must hold copies, never
  // references to the caller's stack.
  error run(operation op, std::chrono::milliseconds timeout);
  template <class Function>
  auto call(Function&& function);
  void check_not_on_client_thread(const char* what) const;
  bool on_client_thread() const noexcept { return std::this_thread::get_id() == thread_id_; }

  std::shared_ptr<shared_state> state_;
  std::thread thread_;
  std::thread::id thread_id_;
};

}  // namespace tidings::client
