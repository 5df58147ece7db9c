#pragma once

// A blocking test client that speaks raw frames, so tests see exactly what the broker
// puts on the wire. Every receive has a deadline: a hang fails the test instead of
// stalling the suite.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace tidings::test {

using namespace std::chrono_literals;
using json = nlohmann::json;

inline constexpr std::chrono::milliseconds default_timeout = 5s;

// The 4-byte big-endian length prefix of a frame (any length, for broken prefixes too).
std::string length_prefix(std::uint32_t length);
// `body` behind its length prefix: one whole frame, as sent.
std::string framed(std::string_view body);

class raw_client {
 public:
  // Connects to 127.0.0.1:port. Throws std::runtime_error on failure.
  explicit raw_client(std::uint16_t port, std::chrono::milliseconds timeout = default_timeout);
  ~raw_client();
  raw_client(raw_client&& other) noexcept;
  raw_client& operator=(raw_client&&) = delete;
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  // Sends `body` behind its 4-byte length prefix.
  void send_frame(std::string_view body);
  void send_json(const json& frame) { send_frame(frame.dump()); }
  // Sends bytes as they are (for broken prefixes and split frames).
  void send_raw(std::string_view bytes);

  // The next frame's body; nullopt on timeout, EOF or reset.
  std::optional<std::string> recv_frame(std::chrono::milliseconds timeout = default_timeout);
  // The next frame parsed as JSON; throws std::runtime_error on timeout/EOF.
  json recv(std::chrono::milliseconds timeout = default_timeout);
  // Receives until a frame with this op arrives; the frames before it go to `skipped`.
  json recv_op(std::string_view op, std::vector<json>* skipped = nullptr,
               std::chrono::milliseconds timeout = default_timeout);

  // Flush barrier (PROTOCOL.md section 2): sends a ping with a fresh id and returns every
  // frame that arrived before its pong.
  std::vector<json> sync(std::chrono::milliseconds timeout = default_timeout);

  // True once the server has closed the connection (EOF or reset) within the timeout;
  // frames still arriving before the close are returned in `rest`.
  bool wait_closed(std::chrono::milliseconds timeout = default_timeout,
                   std::vector<std::string>* rest = nullptr);

  // Reads the `info` greeting; most tests call this first.
  json read_info(std::chrono::milliseconds timeout = default_timeout) {
    return recv_op("info", nullptr, timeout);
  }

  void shutdown_write();
  int fd() const noexcept { return fd_; }
  // Makes the kernel receive buffer small, so a client that stops reading backs up fast.
  void set_receive_buffer(int bytes);

 private:
  // Fills buffer_ until it holds `n` bytes; false on timeout/EOF.
  bool fill(std::size_t n, std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string buffer_;
  std::uint64_t next_ping_id_ = 1'000'000;
};

}  // namespace tidings::test
