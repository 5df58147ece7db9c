#pragma once

// One event loop: an io_context run by one thread, and what the sessions it owns share.
// Everything here is touched only on the loop's own thread, so it needs no locks.

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "tidings/asio.hpp"
#include "tidings/broker/router.hpp"

namespace tidings::broker {

class session;

struct write_buffer {
  std::unique_ptr<char[]> data;
  std::size_t capacity = 0;
};

struct event_loop {
  explicit event_loop(subscription_index& index) : route(index), sweep_timer(io) {}

  // Calls `fn` with every session of this loop, then wakes what it queued for. `fn` may
  // close sessions, which unregisters them: the loop iterates over a copy.
  template <typename Fn>
  void for_each_session(Fn&& fn) {
    sweep_scratch.clear();
    for (const auto& [id, s] : sessions)
      sweep_scratch.push_back(s);
    for (const auto& s : sweep_scratch)
      fn(s);
    sweep_scratch.clear();
    batch.flush();
  }

  asio::io_context io{1};  // one thread runs it
  router route;
  // Sessions read into this one buffer in turn and process it at once, so an idle
  // connection holds no read buffer of its own.
  std::vector<char> read_buffer = std::vector<char>(64 * 1024);
  // Subscribers to wake once the current read batch is processed.
  delivery_batch batch;
  std::unordered_map<std::uint64_t, std::shared_ptr<session>> sessions;
  asio::steady_timer sweep_timer;
  std::vector<std::shared_ptr<session>> sweep_scratch;

  // Write buffers lent to sessions for the duration of one write, so that an idle
  // connection holds none and a busy one does not make the allocator trim and regrow.
  std::vector<write_buffer> write_buffers;
};

}  // namespace tidings::broker
