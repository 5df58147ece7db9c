#include "tidings/broker/outbound_queue.hpp"

#include <algorithm>
#include <cstring>

namespace tidings::broker {

void outbound_queue::push_msg(const protocol::msg_prefix& prefix, shared_body body) {
  entry& e = frames_.emplace_back();
  e.body = std::move(body);
  std::memcpy(e.head.data(), prefix.data(), prefix.size());
  e.head_size = static_cast<std::uint8_t>(prefix.size());
  pending_ += e.size();
}

void outbound_queue::push_frame(shared_body frame) {
  entry& e = frames_.emplace_back();
  e.body = std::move(frame);
  pending_ += e.size();
}

std::size_t outbound_queue::take(std::vector<entry>& batch, std::size_t max_frames,
                                 std::size_t max_bytes) {
  std::size_t bytes = 0;
  std::size_t taken = 0;
  while (head_ < frames_.size() && taken < max_frames) {
    entry& e = frames_[head_];
    if (taken > 0 && bytes + e.size() > max_bytes) break;
    bytes += e.size();
    batch.push_back(std::move(e));
    ++head_;
    ++taken;
  }
  if (head_ == frames_.size()) {
    // Storage grown by a past backlog goes back once the backlog is gone.
    constexpr std::size_t retained_frames = 4096;
    if (frames_.capacity() > retained_frames) {
      std::vector<entry>().swap(frames_);
    } else {
      frames_.clear();
    }
    head_ = 0;
  } else if (head_ >= 1024 && head_ * 2 >= frames_.size()) {
    // A backlog that never empties: reclaim the taken front, amortised O(1) per frame.
    frames_.erase(frames_.begin(), frames_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  return bytes;
}

std::size_t outbound_queue::clear() noexcept {
  const std::size_t dropped = queued_frames();
  for (std::size_t i = head_; i < frames_.size(); ++i)
    pending_ -= frames_[i].size();
  frames_.clear();
  head_ = 0;
  return dropped;
}

}  // namespace tidings::broker
