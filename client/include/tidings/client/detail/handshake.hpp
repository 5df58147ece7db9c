#pragma once

// The steps of one connection attempt: transport up, the server's `info`, our `connect`,
// its `ok`. Pure (no I/O): the connection reports each event and asks what it may do.
//
// Until the server has accepted `connect`, only `connect` itself (and pongs) go on the
// socket; subscriptions and buffered publishes wait for the `ok`. A refusal after `info`
// (too_many_connections, a reset) therefore never takes anything with it: the next
// attempt starts from the same buffer and the same confirmations.

#include <cstdint>
#include <string>

#include "tidings/client/options.hpp"
#include "tidings/protocol/messages.hpp"

namespace tidings::client::detail {

class handshake {
 public:
  enum class stage { idle, connecting, awaiting_info, awaiting_ok, accepted };

  // A new attempt (resolve and TCP connect).
  void begin() noexcept {
    stage_ = stage::connecting;
    connect_id_ = 0;
  }
  // The TCP connection is up; the server speaks first.
  void transport_up() noexcept {
    if (stage_ == stage::connecting) stage_ = stage::awaiting_info;
  }
  // `info` arrived: appends `connect` (with `id`) to `out`. False (nothing appended) when
  // `info` was not expected now; a repeated `info` is ignored.
  bool on_info(const options& settings, std::int64_t id, std::string& out);
  // Whether an `ok`/`err` with this id answers our `connect`.
  bool answers_connect(std::int64_t id) const noexcept {
    return stage_ == stage::awaiting_ok && id == connect_id_;
  }
  void on_accepted() noexcept { stage_ = stage::accepted; }
  // The attempt or the connection ended.
  void reset() noexcept { stage_ = stage::idle; }

  stage current() const noexcept { return stage_; }
  bool in_progress() const noexcept {
    return stage_ == stage::connecting || stage_ == stage::awaiting_info ||
           stage_ == stage::awaiting_ok;
  }
  bool got_info() const noexcept {
    return stage_ == stage::awaiting_ok || stage_ == stage::accepted;
  }
  // Frames may be written (connect, pongs) once the server has greeted us.
  bool socket_writable() const noexcept { return got_info(); }
  // The server accepted `connect`: every frame may go.
  bool accepted() const noexcept { return stage_ == stage::accepted; }
  std::int64_t connect_id() const noexcept { return connect_id_; }

  // The largest server frame to accept when the server announced `max_frame` (msg frames
  // carry a little more than the payload a publisher may send).
  static std::uint32_t server_frame_limit(std::uint64_t max_frame) noexcept;

 private:
  stage stage_ = stage::idle;
  std::int64_t connect_id_ = 0;
};

}  // namespace tidings::client::detail
