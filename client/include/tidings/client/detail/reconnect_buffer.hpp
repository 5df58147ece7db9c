#pragma once

// Publishes made while no accepted connection takes frames, kept as whole frames up to a
// byte limit. They go out, in order, right after a new connection is accepted (after the
// subscriptions are restored); a failed attempt keeps them. Pure: a string and a limit.

#include <cstddef>
#include <string>

namespace tidings::client::detail {

class reconnect_buffer {
 public:
  explicit reconnect_buffer(std::size_t limit) : limit_(limit) {}

  // The encoder appends one frame here; the caller then asks fits() and rolls the frame
  // back with truncate() when it does not.
  std::string& frames() noexcept { return frames_; }
  bool fits() const noexcept { return frames_.size() <= limit_; }
  void truncate(std::size_t size) { frames_.resize(size); }

  std::size_t size() const noexcept { return frames_.size(); }
  std::size_t limit() const noexcept { return limit_; }
  bool empty() const noexcept { return frames_.empty(); }

  // A connection was accepted: the frames follow what `out` holds, and the buffer gives
  // back its memory (it may have grown to the limit).
  void move_to(std::string& out) {
    out += frames_;
    std::string().swap(frames_);
  }
  // The connection is closed for good; returns the bytes dropped.
  std::size_t clear() {
    const std::size_t dropped = frames_.size();
    std::string().swap(frames_);
    return dropped;
  }

 private:
  std::string frames_;
  std::size_t limit_;
};

}  // namespace tidings::client::detail
