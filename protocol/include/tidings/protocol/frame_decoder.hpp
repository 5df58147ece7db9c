#pragma once

// Incremental decoder for length-prefixed frames (PROTOCOL.md section 1).
//
// Feed it whatever the socket produced; it yields frame bodies one at a time. A frame
// that lies whole in the input is returned as a view into the input (no copy). Only a
// frame that straddles two inputs is copied, into storage sized exactly to it. The
// length prefix is checked against [min, max] as soon as its 4 bytes are known, so an
// oversized frame costs no memory at all.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tidings/protocol/errors.hpp"
#include "tidings/protocol/limits.hpp"

namespace tidings::protocol {

class frame_decoder {
 public:
  enum class status : std::uint8_t { need_more, frame, error };

  struct result {
    status state = status::need_more;
    // Bytes of the input taken by this call; the caller drops them before the next call.
    std::size_t consumed = 0;
    // With status::frame: the body. Valid until the next call to next() and, when the
    // frame lay whole in the input, for as long as the input bytes live.
    std::string_view body;
    // With status::error: bad_frame or frame_too_large.
    error_code error = error_code::bad_frame;
    // With status::error: the offending length prefix.
    std::uint32_t length = 0;
  };

  explicit frame_decoder(std::uint32_t max_frame = default_max_frame,
                         std::uint32_t min_frame = min_frame_size) noexcept
      : max_frame_(max_frame), min_frame_(min_frame) {}

  // Takes bytes from `input` and returns at most one frame. With need_more, all of the
  // input was consumed. After an error the decoder stays failed: framing is lost.
  result next(std::string_view input);

  // Bytes of a partial frame (prefix included) held from earlier inputs.
  std::size_t buffered() const noexcept;

  bool failed() const noexcept { return failed_; }
  std::uint32_t max_frame() const noexcept { return max_frame_; }

  // Heap bytes held for frames split across inputs (kept for reuse after a frame).
  std::size_t capacity() const noexcept { return body_.capacity(); }

  // Frees the storage kept from earlier split frames unless a frame is in progress. For
  // a connection going idle: only the frames it is in the middle of should cost memory.
  void shrink() noexcept;

 private:
  result fail(std::uint32_t length);

  std::uint32_t max_frame_;
  std::uint32_t min_frame_;
  std::array<unsigned char, frame_prefix_size> prefix_{};
  std::size_t prefix_have_ = 0;
  // A partial body: body_.size() bytes of body_need_ are here.
  std::string body_;
  std::uint32_t body_need_ = 0;
  bool in_body_ = false;
  bool failed_ = false;
};

// Writes `length` as the 4-byte big-endian prefix.
inline void store_frame_length(char* out, std::uint32_t length) noexcept {
  out[0] = static_cast<char>((length >> 24) & 0xFF);
  out[1] = static_cast<char>((length >> 16) & 0xFF);
  out[2] = static_cast<char>((length >> 8) & 0xFF);
  out[3] = static_cast<char>(length & 0xFF);
}

inline std::uint32_t load_frame_length(const unsigned char* in) noexcept {
  return (std::uint32_t{in[0]} << 24) | (std::uint32_t{in[1]} << 16) | (std::uint32_t{in[2]} << 8) |
         std::uint32_t{in[3]};
}

}  // namespace tidings::protocol
