#include "tidings/broker/outbound_queue.hpp"

#include <algorithm>

namespace tidings::broker {

void outbound_queue::push_msg(std::uint64_t sid, const shared_body& body, std::size_t wire_size) {
  frames_.push_back(entry{body, sid});
  pending_ += wire_size;
  pushed_ += wire_size;
}

void outbound_queue::push_frame(shared_body frame) {
  pending_ += frame.size();
  control_ += frame.size();
  pushed_ += frame.size();
  frames_.push_back(entry{std::move(frame), 0});
}

std::size_t outbound_queue::take(std::vector<entry>& batch, std::size_t max_frames,
                                 std::size_t max_bytes) {
  // Common case: the writer is idle and everything queued fits one batch. Swapping hands
  // it over in O(1) and gives the queue the batch's old storage to refill.
  if (head_ == 0 && batch.empty() && frames_.size() <= max_frames && pending_ <= max_bytes) {
    batch.swap(frames_);
    frames_.clear();
    control_ = 0;
    taken_ += pending_;
    return pending_;
  }
  std::size_t bytes = 0;
  std::size_t taken = 0;
  batch.reserve(batch.size() + std::min(max_frames, frames_.size() - head_));
  while (head_ < frames_.size() && taken < max_frames) {
    entry& e = frames_[head_];
    if (taken > 0 && bytes + e.size() > max_bytes) break;
    bytes += e.size();
    if (!e.is_msg()) control_ -= e.size();
    batch.push_back(std::move(e));
    ++head_;
    ++taken;
  }
  taken_ += bytes;
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
  control_ = 0;
  return dropped;
}

void outbound_queue::shrink(std::size_t frames) noexcept {
  if (empty() && frames_.capacity() > frames) {
    std::vector<entry>().swap(frames_);
    head_ = 0;
  }
}

}  // namespace tidings::broker
