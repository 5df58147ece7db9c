#pragma once

// One client connection: reads frames, applies them, and writes what is queued for it.
//
// Threads: everything but the subscriber interface runs on the session's event loop.
// enqueue_msg(), wake() and expire() may come from any loop (a publisher elsewhere);
// the outbound queue and the few flags they touch are guarded by mutex_.
//
// Reading: the session waits for readability without a buffer, then reads into its
// loop's shared buffer and processes every whole frame at once; the frame decoder keeps
// only the bytes of a frame split across reads. Writing: one write in flight at a time,
// taking everything queued (up to a byte cap); small frames are copied into one staging
// buffer, large bodies are gathered by reference.
//
// Ending: close() records one close_reason. Ends that owe the client an `err` (framing
// errors, stale connection, refusal, shutdown) first stop routing to the session, queue
// the `err` behind what is queued, write it, half-close, and only then close; a slow
// consumer loses its backlog. From the moment an end begins, input is read and
// discarded, never left unread: closing a socket with unread input makes the kernel
// reset the connection and throw away what it had not yet sent. After the half-close the
// session lingers until the client closes its side, or (shutdown) until everything sent
// was acknowledged, or (other ends) for at most a second.
//
// Memory: when its socket is drained the session gives back what one unusual frame made
// its buffers grow to (the decoder's split frame, the parser's scratch), and when it has
// nothing left to write, its outbound vectors; an idle connection keeps a small footprint.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tidings/asio.hpp"
#include "tidings/broker/close_reason.hpp"
#include "tidings/broker/event_loop.hpp"
#include "tidings/broker/outbound_queue.hpp"
#include "tidings/broker/router.hpp"
#include "tidings/broker/server_context.hpp"
#include "tidings/protocol/frame_decoder.hpp"
#include "tidings/protocol/parser.hpp"

namespace tidings::broker {

class session final : public subscriber, public std::enable_shared_from_this<session> {
 public:
  using clock = std::chrono::steady_clock;

  session(server_context& server, event_loop& loop, tcp::socket socket, std::uint64_t client_id);
  ~session() override;

  // Sends `info` and starts reading. `counted`: the session holds one of the server's
  // active_connections, which it gives back when it closes (the server took it). On the loop.
  void start(bool counted);
  // Sends `info` and `err too_many_connections`, then closes. On the loop.
  void refuse();
  // Graceful stop: flush what is queued, send `shutting_down`, close. On the loop.
  void drain();
  // Ends the session now (the drain ran out of time). On the loop.
  void abort(close_reason reason);
  // Periodic duties: server pings, the write deadline, the linger after a framing error.
  void tick(clock::time_point now);

  std::uint64_t client_id() const noexcept { return client_id_; }

  // subscriber
  enqueue_result enqueue_msg(subscription& sub, const shared_body& body) override;
  void wake() override;
  void expire(const std::shared_ptr<subscription>& sub) override;

 private:
  enum class state : std::uint8_t { open, flushing, lingering, closed };

  // Parks on readiness; only once a read found the socket drained.
  void wait_readable();
  // Reads at once (from a posted handler): when data may already be waiting.
  void resume_reading();
  void on_readable(const boost::system::error_code& ec);
  void process(std::string_view bytes);
  // Reads and drops what the client sent (a bounded amount per call): until the socket
  // is drained, or there is more than one turn's worth, or it reported EOF or an error.
  enum class discarded : std::uint8_t { drained, more, closed };
  discarded discard_input();
  // Idle: gives back storage grown for past frames.
  // Gives back the outbound vectors a backlog grew, once nothing is being written. Called
  // from the sweep, not whenever the writer finds the queue empty: a busy connection
  // would free and regrow them between two bursts (measured: a third of the throughput
  // at 1 -> 1 with 4 KiB messages).
  void release_write_storage();
  void release_read_storage();
  void handle_frame(std::string_view body);
  void handle_pub(const protocol::pub_message& pub);
  void handle_sub(const protocol::sub_message& sub);
  void handle_unsub(const protocol::unsub_message& unsub);

  // Control frames (info, ok, err, ping, pong): queued in order with the messages and
  // never dropped. Under the close policy, one that passes max_pending cuts the client;
  // under drop, reading pauses while the client's control frames are backed up past
  // their own limit (outbound_queue::control_limit) and resumes once they drain.
  // `ping`: this is the server's ping, whose unanswered time counts from when the writer
  // takes it, not from when it was queued behind a backlog.
  void queue_control(std::string_view frame, bool ping = false);
  void reply_ok();
  void reply_err(protocol::error_code code, std::string_view message, bool with_id = true,
                 std::string_view topic = {});

  void start_write();
  void on_write(const boost::system::error_code& ec, std::size_t bytes);

  void remove_subscription(const std::shared_ptr<subscription>& sub);
  void drop_all_subscriptions();
  // Stops routing to this session, stops processing input (it is read and discarded),
  // queues `code` (if any) after what is queued, writes it all, half-closes and lingers
  // (see the top of this file) before closing.
  void finish(close_reason reason, std::optional<protocol::error_code> code,
              std::string_view message);
  // The final err is written: half-close, then linger or close.
  void end_flush();
  // Slow consumer: discard the backlog, try to send the err, close.
  void cut_slow_consumer(std::string_view why);
  void close(close_reason reason);

  server_context& server_;
  event_loop& loop_;
  tcp::socket socket_;
  const std::uint64_t client_id_;
  std::string remote_;  // "ip:port", for logs

  // Reading side (loop only).
  protocol::frame_decoder decoder_;
  protocol::client_parser parser_;
  protocol::client_frame frame_;
  std::string scratch_;  // encodes control frames
  std::uint64_t frames_seen_ = 0;
  bool echo_ = true;
  bool reading_ = false;
  bool read_paused_ = false;  // own replies backed up (drop policy): wait for the writer
  bool counted_ = false;      // holds one of max_connections
  bool peer_closed_ = false;  // EOF seen: nothing more will arrive
  std::string name_;
  std::unordered_map<std::uint64_t, std::shared_ptr<subscription>> subscriptions_;

  // Writing side (loop only).
  std::vector<outbound_queue::entry> in_flight_;
  std::size_t in_flight_bytes_ = 0;
  write_buffer staging_;  // borrowed from the loop while a write is in flight
  std::vector<asio::const_buffer> buffers_;
  bool writing_ = false;
  // The write deadline is "no progress for write_deadline": a partial write completing,
  // or the kernel's unacknowledged bytes changing (the peer read some), is progress.
  clock::time_point last_progress_{};
  std::optional<std::size_t> last_unacked_;

  // Lifecycle and timers (loop only).
  state state_ = state::open;
  close_reason finish_reason_ = close_reason::client_closed;
  clock::time_point linger_until_{};
  clock::time_point next_ping_{};
  std::uint32_t pings_out_ = 0;  // server pings taken by the writer and not yet answered
  // The server's last ping while it waits in the queue: the queue's pushed_total() just
  // after it (0: none waits). taken_total_ is the queue's taken_total() as of the last
  // take, and taken_at_tick_ its value at the last ping tick (no take in between: the
  // client read nothing for a whole interval).
  std::uint64_t ping_mark_ = 0;
  std::uint64_t taken_total_ = 0;
  std::uint64_t taken_at_tick_ = 0;

  // Shared with publishers on other loops.
  std::mutex mutex_;
  outbound_queue queue_;
  bool wake_due_ = false;    // a wake-up is scheduled or the writer is active
  bool accepting_ = true;    // false once the session is ending: no more msgs
  bool overflowed_ = false;  // max_pending passed under the close policy
  std::uint64_t dropped_ = 0;
};

}  // namespace tidings::broker
