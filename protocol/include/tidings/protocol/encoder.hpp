#pragma once

// Encoders for every op. Each appends one complete frame (length prefix included) to
// `out`, so a caller can batch several frames into one buffer.
//
// `raw_id` is an `id` as JSON text (`42`, `"abc"`): servers echo the token they received,
// clients pass the one they made. Empty means no id.
//
// A `msg` is encoded in two parts so that one publish costs one body whatever the
// number of subscribers: a body shared by every subscriber (everything after `sid`),
// and a small per-subscriber prefix (length prefix, op and sid).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tidings/protocol/errors.hpp"
#include "tidings/protocol/messages.hpp"

namespace tidings::protocol {

void encode_info(std::string& out, const info_message& info);
void encode_ok(std::string& out, std::string_view raw_id);
void encode_err(std::string& out, error_code code, std::string_view message,
                std::string_view raw_id = {}, std::string_view topic = {});
void encode_ping(std::string& out, std::string_view raw_id = {});
void encode_pong(std::string& out, std::string_view raw_id = {});

void encode_connect(std::string& out, const connect_message& connect, std::string_view raw_id = {});
// `pub.data` and `pub.headers` are raw JSON, written verbatim; the caller vouches for them.
void encode_pub(std::string& out, const pub_message& pub, std::string_view raw_id = {});
void encode_sub(std::string& out, const sub_message& sub, std::string_view raw_id = {});
void encode_unsub(std::string& out, const unsub_message& unsub, std::string_view raw_id = {});

// A whole `msg` frame (for tests and for senders with a single target).
void encode_msg(std::string& out, const msg_message& msg);

// The shared part of a `msg`: `"topic":...,"data":...}` (reply and headers when set).
// `data` and `headers` are written verbatim.
void encode_msg_body(std::string& out, std::string_view topic, std::string_view data,
                     std::string_view reply = {}, std::string_view headers = {});

// The per-subscriber part: the length prefix and `{"op":"msg","sid":N,`.
class msg_prefix {
 public:
  static constexpr std::size_t capacity = 48;

  msg_prefix(std::uint64_t sid, std::size_t body_size) noexcept;

  std::string_view view() const noexcept { return {bytes_.data(), size_}; }
  const char* data() const noexcept { return bytes_.data(); }
  std::size_t size() const noexcept { return size_; }

 private:
  std::array<char, capacity> bytes_;
  std::uint8_t size_ = 0;
};

// The per-subscriber part written straight into `out`, which must have room for
// msg_prefix::capacity bytes. Returns the bytes written (msg_prefix_size(sid)).
std::size_t write_msg_prefix(char* out, std::uint64_t sid, std::size_t body_size) noexcept;
std::size_t msg_prefix_size(std::uint64_t sid) noexcept;

// Appends the decimal form of an integer id (`raw_id` for encoders).
void append_integer(std::string& out, std::int64_t value);

// Reserves a length prefix at the end of `out`; finish_frame() fills it in.
std::size_t begin_frame(std::string& out);
void finish_frame(std::string& out, std::size_t frame_start);

}  // namespace tidings::protocol
