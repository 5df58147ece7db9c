#include "tidings/broker/outbound_queue.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tidings::broker {
namespace {

// The bytes an entry puts on the wire, formatted as the session's writer does.
std::string bytes_of(const outbound_queue::entry& e) {
  std::string head;
  if (e.is_msg()) head = protocol::msg_prefix(e.sid, e.body.size()).view();
  return head + std::string(e.body.view());
}

TEST(outbound_queue, counts_queued_and_in_flight_bytes_against_the_limit) {
  outbound_queue queue(100);
  const auto body = shared_body::copy_of(std::string(40, 'x'));
  const std::size_t frame = protocol::msg_prefix(1, body.size()).size() + body.size();
  EXPECT_FALSE(queue.would_overflow(frame));
  queue.push_msg(1, body, frame);
  EXPECT_EQ(queue.pending_bytes(), frame);
  EXPECT_TRUE(queue.would_overflow(100 - frame + 1));
  EXPECT_FALSE(queue.would_overflow(100 - frame));

  std::vector<outbound_queue::entry> batch;
  EXPECT_EQ(queue.take(batch, 16, 1 << 20), frame);
  EXPECT_TRUE(queue.empty());
  // In flight still counts until the write completes.
  EXPECT_EQ(queue.pending_bytes(), frame);
  queue.complete(frame);
  EXPECT_EQ(queue.pending_bytes(), 0U);
}

TEST(outbound_queue, msg_entries_are_prefix_plus_shared_body) {
  outbound_queue queue(1 << 20);
  std::string body_text;
  protocol::encode_msg_body(body_text, "a.b", "[1,2]");
  const auto body = shared_body::copy_of(body_text);
  queue.push_msg(5, body, protocol::msg_prefix_size(5) + body.size());
  queue.push_msg(12345, body, protocol::msg_prefix_size(12345) + body.size());

  std::vector<outbound_queue::entry> batch;
  queue.take(batch, 16, 1 << 20);
  ASSERT_EQ(batch.size(), 2U);
  EXPECT_EQ(batch[0].body.data(), batch[1].body.data());  // shared, not copied
  EXPECT_EQ(batch[0].size(), bytes_of(batch[0]).size());
  EXPECT_EQ(batch[1].size(), bytes_of(batch[1]).size());

  std::string expected;
  protocol::encode_msg(expected, {5, "a.b", "[1,2]", {}, {}});
  EXPECT_EQ(bytes_of(batch[0]), expected);
  expected.clear();
  protocol::encode_msg(expected, {12345, "a.b", "[1,2]", {}, {}});
  EXPECT_EQ(bytes_of(batch[1]), expected);
}

TEST(outbound_queue, take_respects_frame_and_byte_caps_but_always_makes_progress) {
  outbound_queue queue(1 << 20);
  for (int i = 0; i < 10; ++i)
    queue.push_frame(shared_body::copy_of(std::string(100, 'a')));
  std::vector<outbound_queue::entry> batch;
  EXPECT_EQ(queue.take(batch, 3, 1 << 20), 300U);
  EXPECT_EQ(batch.size(), 3U);
  batch.clear();
  EXPECT_EQ(queue.take(batch, 100, 250), 200U);
  EXPECT_EQ(batch.size(), 2U);
  batch.clear();
  // A frame larger than the byte cap still goes out alone.
  EXPECT_EQ(queue.take(batch, 100, 10), 100U);
  EXPECT_EQ(batch.size(), 1U);
  EXPECT_EQ(queue.queued_frames(), 4U);
}

TEST(outbound_queue, preserves_order_across_takes_and_compaction) {
  outbound_queue queue(1 << 30);
  constexpr int count = 5000;
  for (int i = 0; i < count; ++i)
    queue.push_frame(shared_body::copy_of(std::to_string(i)));
  std::vector<outbound_queue::entry> batch;
  int next = 0;
  while (!queue.empty()) {
    batch.clear();
    const auto bytes = queue.take(batch, 7, 1 << 20);
    std::size_t sum = 0;
    for (const auto& e : batch) {
      EXPECT_EQ(std::string(e.body.view()), std::to_string(next++));
      sum += e.size();
    }
    EXPECT_EQ(bytes, sum);
    queue.complete(bytes);
    // A frame pushed while a batch is out lands behind everything queued.
    if (next == 2002) queue.push_frame(shared_body::copy_of(std::to_string(count)));
  }
  EXPECT_EQ(next, count + 1);
  EXPECT_EQ(queue.pending_bytes(), 0U);
}

TEST(outbound_queue, clear_drops_queued_frames_but_not_the_batch_in_flight) {
  outbound_queue queue(1 << 20);
  for (int i = 0; i < 4; ++i)
    queue.push_frame(shared_body::copy_of("abcd"));
  std::vector<outbound_queue::entry> batch;
  queue.take(batch, 1, 1 << 20);
  EXPECT_EQ(queue.clear(), 3U);
  EXPECT_EQ(queue.pending_bytes(), 4U);  // the one in flight
  queue.complete(4);
  EXPECT_EQ(queue.pending_bytes(), 0U);
  EXPECT_EQ(std::string(batch[0].body.view()), "abcd");
}

TEST(outbound_queue, msg_prefix_size_matches_the_written_prefix) {
  for (const std::uint64_t sid : {1ULL, 9ULL, 10ULL, 99ULL, 100ULL, (1ULL << 53) - 1}) {
    char out[protocol::msg_prefix::capacity];
    EXPECT_EQ(protocol::write_msg_prefix(out, sid, 7), protocol::msg_prefix_size(sid)) << sid;
  }
}

TEST(outbound_queue, control_frames_have_their_own_count_and_limit) {
  // Issue 9, defect 4: under the drop policy a full queue of messages must not make a
  // control frame look backed up; the session pauses reading on the control count alone.
  outbound_queue queue(1000);
  EXPECT_EQ(queue.control_limit(), 1000U);  // min(max_pending, max_control)
  EXPECT_EQ(outbound_queue(1ULL << 30).control_limit(), outbound_queue::max_control);
  const auto body = shared_body::copy_of(std::string(970, 'x'));
  const std::size_t msg = protocol::msg_prefix_size(1) + body.size();
  ASSERT_LE(msg, 1000U);
  queue.push_msg(1, body, msg);
  EXPECT_EQ(queue.control_bytes(), 0U);
  EXPECT_FALSE(queue.control_backed_up());

  const auto pong = shared_body::copy_of(std::string(R"({"op":"pong"})"));
  queue.push_frame(pong);  // passes max_pending: control frames are never refused
  EXPECT_GT(queue.pending_bytes(), queue.max_pending());
  EXPECT_EQ(queue.control_bytes(), pong.size());
  EXPECT_FALSE(queue.control_backed_up());
  for (int i = 0; i < 80; ++i)
    queue.push_frame(pong);
  EXPECT_TRUE(queue.control_backed_up());
  EXPECT_FALSE(queue.control_drained());

  // Order is kept: the msg first, then the frames; taking them drains the control count.
  std::vector<outbound_queue::entry> batch;
  queue.take(batch, 2, 1 << 20);
  ASSERT_EQ(batch.size(), 2U);
  EXPECT_TRUE(batch[0].is_msg());
  EXPECT_FALSE(batch[1].is_msg());
  EXPECT_EQ(queue.control_bytes(), 80 * pong.size());
  batch.clear();
  queue.take(batch, 1000, 1 << 20);
  EXPECT_EQ(queue.control_bytes(), 0U);
  EXPECT_TRUE(queue.control_drained());

  queue.push_frame(pong);
  EXPECT_EQ(queue.clear(), 1U);
  EXPECT_EQ(queue.control_bytes(), 0U);
}

TEST(outbound_queue, pushed_and_taken_totals_tell_when_a_frame_was_taken) {
  // The session's ping accounting: a ping counts as sent once the writer took it.
  outbound_queue queue(1 << 20);
  const auto body = shared_body::copy_of(std::string(100, 'x'));
  const std::size_t msg = protocol::msg_prefix_size(3) + body.size();
  queue.push_msg(3, body, msg);
  queue.push_msg(3, body, msg);
  const auto ping = shared_body::copy_of(std::string(R"({"op":"ping"})"));
  queue.push_frame(ping);
  const std::uint64_t mark = queue.pushed_total();
  EXPECT_EQ(mark, 2 * msg + ping.size());
  queue.push_msg(3, body, msg);

  std::vector<outbound_queue::entry> batch;
  queue.take(batch, 2, 1 << 20);
  EXPECT_LT(queue.taken_total(), mark);
  batch.clear();
  queue.take(batch, 1, 1 << 20);
  EXPECT_EQ(queue.taken_total(), mark);
  batch.clear();
  queue.take(batch, 10, 1 << 20);
  EXPECT_EQ(queue.taken_total(), queue.pushed_total());

  // The swap fast path counts as well.
  outbound_queue idle(1 << 20);
  idle.push_frame(ping);
  std::vector<outbound_queue::entry> all;
  EXPECT_EQ(idle.take(all, 16, 1 << 20), ping.size());
  EXPECT_EQ(idle.taken_total(), ping.size());
  EXPECT_EQ(idle.control_bytes(), 0U);
}

TEST(shared_body, copies_share_one_buffer_and_free_it_with_the_last) {
  auto body = shared_body::copy_of("payload");
  const char* data = body.data();
  {
    shared_body copy = body;
    shared_body moved = std::move(copy);
    EXPECT_EQ(moved.data(), data);
    EXPECT_FALSE(copy);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  }
  EXPECT_EQ(body.view(), "payload");
  shared_body empty;
  EXPECT_EQ(empty.size(), 0U);
}

}  // namespace
}  // namespace tidings::broker
