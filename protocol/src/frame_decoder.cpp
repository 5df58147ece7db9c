#include "tidings/protocol/frame_decoder.hpp"

#include <algorithm>
#include <cstring>

namespace tidings::protocol {
namespace {

// A partial frame larger than this gives its storage back once delivered, so one big
// frame does not pin a megabyte for the connection's lifetime.
constexpr std::size_t retained_capacity = 64 * 1024;

}  // namespace

frame_decoder::result frame_decoder::fail(std::uint32_t length) {
  failed_ = true;
  result r;
  r.state = status::error;
  r.error = length < min_frame_ ? error_code::bad_frame : error_code::frame_too_large;
  r.length = length;
  return r;
}

frame_decoder::result frame_decoder::next(std::string_view input) {
  if (failed_) {
    result r;
    r.state = status::error;
    r.error = error_code::bad_frame;
    return r;
  }
  std::size_t used = 0;

  if (!in_body_) {
    // Fast path: the prefix and the whole body lie in the input.
    if (prefix_have_ == 0 && input.size() >= frame_prefix_size) {
      const auto length = load_frame_length(reinterpret_cast<const unsigned char*>(input.data()));
      if (length < min_frame_ || length > max_frame_) return fail(length);
      if (input.size() - frame_prefix_size >= length) {
        result r;
        r.state = status::frame;
        r.body = input.substr(frame_prefix_size, length);
        r.consumed = frame_prefix_size + length;
        return r;
      }
    }
    // Slow path: gather the prefix, possibly over several inputs.
    const std::size_t take = std::min(frame_prefix_size - prefix_have_, input.size());
    // An empty input may have a null data(): memcpy must not see it, even for 0 bytes.
    if (take != 0) std::memcpy(prefix_.data() + prefix_have_, input.data(), take);
    prefix_have_ += take;
    used += take;
    if (prefix_have_ < frame_prefix_size) {
      result r;
      r.consumed = used;
      return r;
    }
    const auto length = load_frame_length(prefix_.data());
    if (length < min_frame_ || length > max_frame_) {
      result r = fail(length);
      r.consumed = used;
      return r;
    }
    prefix_have_ = 0;
    in_body_ = true;
    body_need_ = length;
    if (body_.capacity() > retained_capacity && length <= retained_capacity) {
      std::string().swap(body_);  // give back what an earlier large frame took
    }
    body_.clear();
    // Only now, with the length checked, is memory committed to the body.
    body_.reserve(length);
    input.remove_prefix(take);
  }

  const std::size_t take = std::min<std::size_t>(body_need_ - body_.size(), input.size());
  body_.append(input.data(), take);
  used += take;
  result r;
  r.consumed = used;
  if (body_.size() == body_need_) {
    in_body_ = false;
    r.state = status::frame;
    r.body = body_;
  }
  return r;
}

std::size_t frame_decoder::buffered() const noexcept {
  return in_body_ ? frame_prefix_size + body_.size() : prefix_have_;
}

void frame_decoder::shrink() noexcept {
  // Between frames nothing here is needed: whatever a past split frame took goes back.
  if (!in_body_) std::string().swap(body_);
}

}  // namespace tidings::protocol
