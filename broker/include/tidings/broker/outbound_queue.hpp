#pragma once

// A connection's outbound frames, bounded in bytes. No I/O: the session's writer takes a
// batch, writes it with one gather write, then reports completion.
//
// A `msg` is the subscriber's sid plus a reference to the body shared by all subscribers
// of that message; other frames are a body alone.
// Batches are moved out of the queue while they are written, so frames queued during a
// write never move the bytes under it.
//
// One FIFO for messages and control frames alike (info, ok, err, ping, pong), so a pong
// still follows every msg queued before the ping it answers. Messages are bounded by
// max_pending and refused beyond it (by the caller's policy); control frames are never
// refused, and are also counted on their own: the session stops reading a client whose
// replies back up past control_limit() and resumes once they drain. So the queue holds
// at most max_pending plus control_limit() plus one frame.
//
// Not thread-safe: the session guards it with its own mutex.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "tidings/broker/shared_body.hpp"
#include "tidings/protocol/encoder.hpp"

namespace tidings::broker {

class outbound_queue {
 public:
  // 16 bytes: a delivery costs a reference to the shared body and the subscriber's sid;
  // the per-subscriber head is formatted only when the frame is written.
  struct entry {
    shared_body body;
    std::uint64_t sid = 0;  // 0: `body` is a whole frame (info, ok, err, ping, pong)

    bool is_msg() const noexcept { return sid != 0; }
    std::size_t size() const noexcept {
      return (is_msg() ? protocol::msg_prefix_size(sid) : 0) + body.size();
    }
  };

  // Control bytes queued (not yet taken) beyond which the client's input waits.
  static constexpr std::uint64_t max_control = 1024 * 1024;

  explicit outbound_queue(std::uint64_t max_pending) noexcept : max_pending_(max_pending) {}

  // Whether `bytes` more would pass max_pending (queued plus in-flight bytes).
  bool would_overflow(std::size_t bytes) const noexcept { return pending_ + bytes > max_pending_; }

  // `wire_size` is what the frame will take on the wire (entry::size()); the caller has
  // it already from checking the limit.
  void push_msg(std::uint64_t sid, const shared_body& body, std::size_t wire_size);
  void push_frame(shared_body frame);

  // Moves frames from the front into `batch` (which the caller keeps alive until the
  // write completes) until `max_frames` or `max_bytes` is reached; at least one frame if
  // any is queued. Returns the bytes moved. Call it only with no batch in flight.
  std::size_t take(std::vector<entry>& batch, std::size_t max_frames, std::size_t max_bytes);

  // A batch of `bytes` taken earlier was written (or abandoned).
  void complete(std::size_t bytes) noexcept { pending_ -= bytes; }

  // Drops every queued frame (not the batch in flight); returns how many were dropped.
  std::size_t clear() noexcept;

  // When empty, gives back storage beyond `frames` entries (grown by a past backlog), so
  // that an idle connection keeps a small footprint.
  void shrink(std::size_t frames) noexcept;

  bool empty() const noexcept { return head_ == frames_.size(); }
  std::size_t queued_frames() const noexcept { return frames_.size() - head_; }
  // Queued and in-flight bytes: what max_pending bounds.
  std::uint64_t pending_bytes() const noexcept { return pending_; }
  std::uint64_t max_pending() const noexcept { return max_pending_; }

  // Control frames queued and not yet taken, and their own bound.
  std::uint64_t control_bytes() const noexcept { return control_; }
  std::uint64_t control_limit() const noexcept { return std::min(max_pending_, max_control); }
  bool control_backed_up() const noexcept { return control_ > control_limit(); }
  bool control_drained() const noexcept { return control_ <= control_limit() / 2; }

  // Positions in the stream of bytes ever queued: how far pushing and taking have got.
  // A frame pushed when pushed_total() became P has been taken once taken_total() >= P
  // (frames discarded by clear() are never taken).
  std::uint64_t pushed_total() const noexcept { return pushed_; }
  std::uint64_t taken_total() const noexcept { return taken_; }

 private:
  std::vector<entry> frames_;
  std::size_t head_ = 0;  // frames_[0, head_) were taken
  std::uint64_t pending_ = 0;
  std::uint64_t control_ = 0;
  std::uint64_t pushed_ = 0;
  std::uint64_t taken_ = 0;
  std::uint64_t max_pending_;
};

}  // namespace tidings::broker
