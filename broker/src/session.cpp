#include "tidings/broker/session.hpp"

#include <algorithm>
#include <cstring>

#ifdef __linux__
#include <linux/sockios.h>
#include <sys/ioctl.h>
#endif

#include <spdlog/spdlog.h>

#include "tidings/broker/logging.hpp"
#include "tidings/protocol/encoder.hpp"
#include "tidings/protocol/topic.hpp"

#ifndef TIDINGS_VERSION
#define TIDINGS_VERSION "0.0.0"
#endif

namespace tidings::broker {
namespace {

namespace proto = tidings::protocol;

// Frames whose body is at least this large are gathered by reference; smaller ones are
// copied into the staging buffer, since a syscall per few dozen bytes costs far more.
constexpr std::size_t gather_threshold = 1024;
constexpr std::size_t max_batch_frames = 8192;
constexpr std::size_t max_batch_bytes = 512 * 1024;
// Beyond this, a write buffer grown for a burst is released after the write.
constexpr std::size_t min_staging = 64 * 1024;
// Write buffers a loop keeps for reuse, and the largest it keeps.
constexpr std::size_t pooled_buffers = 32;
constexpr std::size_t max_pooled_capacity = 1024 * 1024;
constexpr std::size_t retained_in_flight = max_batch_frames;
// What a connection keeps of its outbound vectors (16 bytes a frame) once it has
// nothing left to write: a backlog grew them, and they go back once it is written. High
// enough that ordinary bursts reuse their storage instead of regrowing it every time.
constexpr std::size_t idle_frames = 256;
// Bytes per write call, as asio::transfer_all() does; each one completing is progress.
constexpr std::size_t write_chunk = 64 * 1024;
constexpr auto linger_after_error = std::chrono::seconds(1);
// Reads of a full buffer before a busy connection yields to the loop's other sessions.
constexpr int max_reads_per_turn = 16;

std::string describe_endpoint(const tcp::socket& socket) {
  boost::system::error_code ec;
  const auto endpoint = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  const auto address = endpoint.address();
  return (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
         std::to_string(endpoint.port());
}

// The greeting, the same for admitted and refused connections (PROTOCOL.md section 4).
proto::info_message make_info(const config& settings, std::uint64_t client_id) {
  proto::info_message info;
  info.server = settings.server_name;
  info.version = TIDINGS_VERSION;
  info.proto = proto::protocol_version;
  info.max_frame = settings.max_frame;
  info.max_pending = settings.max_pending;
  info.write_deadline_ms = static_cast<std::uint64_t>(settings.write_deadline.count());
  info.auth_required = false;
  info.client_id = client_id;
  info.ping_interval_ms = static_cast<std::uint64_t>(settings.ping_interval.count());
  return info;
}

// Bytes written to the socket that the peer has not acknowledged yet (SIOCOUTQ), or
// nullopt where the platform does not say.
std::optional<std::size_t> unacked_bytes(tcp::socket& socket) {
#ifdef __linux__
  int bytes = 0;
  if (::ioctl(socket.native_handle(), SIOCOUTQ, &bytes) == 0 && bytes >= 0) {
    return static_cast<std::size_t>(bytes);
  }
#else
  (void)socket;
#endif
  return std::nullopt;
}

}  // namespace

session::session(server_context& server, event_loop& loop, tcp::socket socket,
                 std::uint64_t client_id)
    : server_(server),
      loop_(loop),
      socket_(std::move(socket)),
      client_id_(client_id),
      remote_(describe_endpoint(socket_)),
      decoder_(server.settings.max_frame),
      queue_(server.settings.max_pending) {
  boost::system::error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);
  // Reads happen only after readiness is reported, straight into the loop's buffer.
  socket_.non_blocking(true, ec);
}

session::~session() = default;

void session::start(bool counted) {
  counted_ = counted;
  loop_.sessions.emplace(client_id_, shared_from_this());
  spdlog::info("client {} connected from {}", client_id_, remote_);

  scratch_.clear();
  proto::encode_info(scratch_, make_info(server_.settings, client_id_));
  queue_control(scratch_);
  next_ping_ = clock::now() + server_.settings.ping_interval;
  resume_reading();  // bytes may have arrived before the socket was registered
  loop_.batch.flush();
}

void session::refuse() {
  loop_.sessions.emplace(client_id_, shared_from_this());
  spdlog::warn("client {} from {} refused: {} connections is the limit", client_id_, remote_,
               server_.settings.max_connections);
  scratch_.clear();
  proto::encode_info(scratch_, make_info(server_.settings, client_id_));
  queue_control(scratch_);
  finish(close_reason::too_many_connections, proto::error_code::too_many_connections,
         "server is at its connection limit");
  loop_.batch.flush();
}

void session::drain() {
  finish(close_reason::server_shutdown, proto::error_code::shutting_down,
         "server is shutting down");
}

void session::abort(close_reason reason) {
  close(reason);
}

// ---------------------------------------------------------------------------------------
// Reading

void session::wait_readable() {
  if (reading_) return;
  reading_ = true;
  socket_.async_wait(
      tcp::socket::wait_read,
      [self = shared_from_this()](const boost::system::error_code& ec) { self->on_readable(ec); });
}

void session::resume_reading() {
  if (reading_) return;
  reading_ = true;
  asio::post(loop_.io, [self = shared_from_this()] { self->on_readable({}); });
}

void session::on_readable(const boost::system::error_code& ec) {
  reading_ = false;
  if (state_ == state::closed) return;
  if (ec) {
    close(close_reason::io_error);
    return;
  }
  if (state_ != state::open) {
    // Ending: the client's input no longer matters, but it must not stay unread, or the
    // close would reset the connection and lose what is still on its way to the client.
    if (peer_closed_) return;
    switch (discard_input()) {
      case discarded::drained:
        wait_readable();
        return;
      case discarded::more:
        resume_reading();  // a fresh edge is not guaranteed while data waits
        return;
      case discarded::closed:
        break;
    }
    peer_closed_ = true;
    // Flushing goes on (a client may half-close and still read); once lingering, the
    // client's close is what the linger waited for.
    if (state_ == state::lingering) close(finish_reason_);
    return;
  }
  for (int round = 0; round < max_reads_per_turn; ++round) {
    boost::system::error_code read_ec;
    const std::size_t n = socket_.read_some(asio::buffer(loop_.read_buffer), read_ec);
    if (read_ec == asio::error::would_block || read_ec == asio::error::try_again) {
      wait_readable();
      return;
    }
    if (read_ec) {
      close(read_ec == asio::error::eof ? close_reason::client_closed : close_reason::io_error);
      return;
    }
    process(std::string_view(loop_.read_buffer.data(), n));
    // One wake-up per destination for everything this read published.
    loop_.batch.flush();
    if (state_ == state::closed) return;
    if (state_ != state::open) {
      // A frame ended the session (framing error, slow consumer): discard from here on.
      resume_reading();
      return;
    }
    if (read_paused_) return;
    // The reactor is edge-triggered and async_wait does not read first: wait only once
    // the socket is known drained, so the next arrival is a fresh edge.
    if (n < loop_.read_buffer.size()) {
      release_read_storage();
      wait_readable();
      return;
    }
  }
  resume_reading();  // more may be waiting: let the loop's other sessions go first
}

session::discarded session::discard_input() {
  for (int round = 0; round < max_reads_per_turn; ++round) {
    boost::system::error_code ec;
    const std::size_t n = socket_.read_some(asio::buffer(loop_.read_buffer), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return discarded::drained;
    if (ec) return discarded::closed;
    if (n < loop_.read_buffer.size()) return discarded::drained;
  }
  return discarded::more;
}

void session::release_write_storage() {
  if (in_flight_.capacity() > idle_frames) std::vector<outbound_queue::entry>().swap(in_flight_);
  std::lock_guard lock(mutex_);
  queue_.shrink(idle_frames);
}

void session::release_read_storage() {
  decoder_.shrink();
  parser_.shrink();
}

void session::process(std::string_view bytes) {
  while (!bytes.empty() && state_ == state::open) {
    const auto step = decoder_.next(bytes);
    bytes.remove_prefix(step.consumed);
    switch (step.state) {
      case proto::frame_decoder::status::need_more:
        return;
      case proto::frame_decoder::status::error: {
        const std::string message =
            step.error == proto::error_code::frame_too_large
                ? "frame length " + std::to_string(step.length) + " exceeds max_frame " +
                      std::to_string(server_.settings.max_frame)
                : "frame length " + std::to_string(step.length) + " is below 2";
        spdlog::debug("client {} ({}): {}", client_id_, remote_, message);
        finish(close_reason::protocol_error, step.error, message);
        return;
      }
      case proto::frame_decoder::status::frame:
        handle_frame(step.body);
        break;
    }
  }
}

void session::handle_frame(std::string_view body) {
  ++frames_seen_;
  const auto result = parser_.parse(body, frame_);
  if (!result) {
    auto code = result.error.code;
    std::string_view message = result.error.message;
    // A duplicate sid (bad_request) outranks an invalid pattern (section 3).
    if (code == proto::error_code::invalid_topic && frame_.kind == proto::op::sub) {
      const auto& sub = std::get<proto::sub_message>(frame_.body);
      const auto it = subscriptions_.find(sub.sid);
      if (it != subscriptions_.end() && it->second->live.load(std::memory_order_acquire)) {
        code = proto::error_code::bad_request;
        message = "'sid' is already in use on this connection";
      }
    }
    spdlog::debug("client {} ({}): {}: {}", client_id_, remote_, proto::wire_name(code), message);
    reply_err(code, message, result.error.id_valid);
    return;
  }

  switch (frame_.kind) {
    case proto::op::connect: {
      if (frames_seen_ != 1) {
        reply_err(proto::error_code::bad_request,
                  "'connect' is allowed only as the connection's first frame");
        return;
      }
      const auto& connect = std::get<proto::connect_message>(frame_.body);
      echo_ = connect.echo;
      // Kept escaped: it is used only in log lines (and bounded at 128 bytes raw).
      if (connect.name) name_ = escape_for_log(*connect.name);
      spdlog::debug("client {} ({}) connect: name=\"{}\" echo={}", client_id_, remote_, name_,
                    echo_);
      reply_ok();
      return;
    }
    case proto::op::pub:
      handle_pub(std::get<proto::pub_message>(frame_.body));
      return;
    case proto::op::sub:
      handle_sub(std::get<proto::sub_message>(frame_.body));
      return;
    case proto::op::unsub:
      handle_unsub(std::get<proto::unsub_message>(frame_.body));
      return;
    case proto::op::ping:
      scratch_.clear();
      proto::encode_pong(scratch_, frame_.id.raw);
      queue_control(scratch_);
      return;
    case proto::op::pong:
      pings_out_ = 0;
      reply_ok();
      return;
    default:
      return;
  }
}

void session::handle_pub(const proto::pub_message& pub) {
  if (proto::is_reserved_topic(pub.topic)) {
    reply_err(proto::error_code::permission_denied, "topics beginning with '$' are reserved");
    return;
  }
  const std::size_t deliveries = loop_.route.publish(this, echo_, pub, loop_.batch);
  if (!pub.reply.empty() && deliveries == 0) {
    reply_err(proto::error_code::no_responders, "no subscription received the request", true,
              pub.reply);
    return;
  }
  reply_ok();
}

void session::handle_sub(const proto::sub_message& sub) {
  auto it = subscriptions_.find(sub.sid);
  if (it != subscriptions_.end()) {
    if (it->second->live.load(std::memory_order_acquire)) {
      reply_err(proto::error_code::bad_request, "'sid' is already in use on this connection");
      return;
    }
    // Ended by `max`; its sid is free again. Mark it ended here too, so that no late
    // delivery of the old subscription (from a loop that claimed it before it ended) is
    // queued under the sid from now on.
    {
      std::lock_guard lock(mutex_);
      it->second->ended_by_owner = true;
    }
    subscriptions_.erase(it);
  }
  if (subscriptions_.size() >= server_.settings.max_subscriptions) {
    reply_err(proto::error_code::too_many_subscriptions,
              "subscription limit of this connection reached");
    return;
  }
  auto entry = std::make_shared<subscription>(shared_from_this(), sub.sid, std::string(sub.topic),
                                              std::string(sub.queue));
  subscriptions_.emplace(sub.sid, entry);
  server_.index.insert(entry);
  reply_ok();
}

void session::handle_unsub(const proto::unsub_message& unsub) {
  const auto it = subscriptions_.find(unsub.sid);
  if (it != subscriptions_.end()) {
    const auto entry = it->second;
    bool reached = unsub.max == 0;
    if (!reached) {
      // Under the lock deliveries are counted under: a delivery racing this `unsub`
      // either is counted here or sees the limit.
      std::lock_guard lock(mutex_);
      entry->max_deliveries = unsub.max;
      reached = entry->accepted >= unsub.max;
    }
    if (reached) remove_subscription(entry);
  }
  reply_ok();
}

// ---------------------------------------------------------------------------------------
// Queueing

enqueue_result session::enqueue_msg(subscription& sub, const shared_body& body) {
  const std::size_t wire_size = proto::msg_prefix_size(sub.sid) + body.size();
  {
    std::lock_guard lock(mutex_);
    // may_accept: not ended by an `unsub` whose `ok` may be queued already (a message
    // now would follow it), and below its `max`.
    if (!accepting_ || !sub.may_accept()) return {};
    if (!queue_.would_overflow(wire_size)) {
      queue_.push_msg(sub.sid, body, wire_size);
      // Counted under the lock the writer takes frames with: a client that sees the
      // last message under `max` finds the subscription ended when it reuses the sid.
      const bool last = sub.count_accepted();
      const bool wake = !wake_due_;
      wake_due_ = true;
      return {true, wake, last};
    }
    if (server_.settings.slow_consumer == slow_consumer_policy::drop) {
      ++dropped_;
      server_.stats.messages_dropped.fetch_add(1, std::memory_order_relaxed);
      return {};
    }
    // Close policy: stop taking messages and have the loop cut the connection, even if
    // a (stuck) write is in flight.
    overflowed_ = true;
    accepting_ = false;
    queue_.clear();
    wake_due_ = true;
  }
  // The message itself is refused (a queue group offers it to another member); the cut
  // runs on this session's loop, posted even from it: the caller may be this very
  // session, in the middle of processing its own publish.
  asio::post(loop_.io, [self = shared_from_this()] { self->start_write(); });
  return {};
}

void session::queue_control(std::string_view frame, bool ping) {
  const bool drop_policy = server_.settings.slow_consumer == slow_consumer_policy::drop;
  bool wake_needed = false;
  bool over = false;
  {
    std::lock_guard lock(mutex_);
    // Under drop, messages give way (they are refused at max_pending) and control frames
    // have a bound of their own: a full queue of messages must not silence the replies
    // and keepalives of a client that is reading.
    over = !drop_policy && queue_.would_overflow(frame.size());
    queue_.push_frame(shared_body::copy_of(frame));
    if (ping) ping_mark_ = queue_.pushed_total();
    if (drop_policy) over = queue_.control_backed_up();
    wake_needed = !wake_due_;
    wake_due_ = true;
  }
  if (wake_needed) loop_.batch.add(shared_from_this());
  if (over && state_ == state::open) {
    // The client sends requests without reading the answers.
    if (!drop_policy) {
      cut_slow_consumer("its replies passed max_pending");
    } else {
      read_paused_ = true;  // resumed by start_write once its replies drain
    }
  }
}

void session::reply_ok() {
  if (!frame_.id.present()) return;
  scratch_.clear();
  proto::encode_ok(scratch_, frame_.id.raw);
  queue_control(scratch_);
}

void session::reply_err(proto::error_code code, std::string_view message, bool with_id,
                        std::string_view topic) {
  scratch_.clear();
  proto::encode_err(scratch_, code, message, with_id ? frame_.id.raw : std::string_view{}, topic);
  queue_control(scratch_);
}

void session::wake() {
  if (loop_.io.get_executor().running_in_this_thread()) {
    start_write();
  } else {
    asio::post(loop_.io, [self = shared_from_this()] { self->start_write(); });
  }
}

void session::expire(const std::shared_ptr<subscription>& sub) {
  // Stop matching at once; the map belongs to the loop.
  server_.index.remove(sub);
  asio::post(loop_.io, [self = shared_from_this(), sub] {
    const auto it = self->subscriptions_.find(sub->sid);
    if (it != self->subscriptions_.end() && it->second == sub) self->subscriptions_.erase(it);
  });
}

// ---------------------------------------------------------------------------------------
// Writing

void session::start_write() {
  if (state_ == state::closed) return;
  bool overflowed = false;
  bool control_drained = false;
  std::size_t bytes = 0;
  {
    std::lock_guard lock(mutex_);
    overflowed = overflowed_;
    if (!overflowed && !writing_) {
      bytes = queue_.take(in_flight_, max_batch_frames, max_batch_bytes);
      if (bytes == 0) wake_due_ = false;
      taken_total_ = queue_.taken_total();
      control_drained = queue_.control_drained();
    }
  }
  if (ping_mark_ != 0 && taken_total_ >= ping_mark_) {
    // The server's ping is on its way: from now on it waits for the client alone.
    ping_mark_ = 0;
    ++pings_out_;
  }
  if (read_paused_ && control_drained && state_ == state::open) {
    // The client's replies are out of the queue; its input (pongs among it) may go on.
    read_paused_ = false;
    resume_reading();
  }
  if (overflowed) {
    cut_slow_consumer("max_pending passed");
    return;
  }
  if (writing_) return;
  if (bytes == 0) {
    if (state_ == state::flushing) end_flush();
    return;
  }

  buffers_.clear();
  std::size_t staged = 0;
  for (const auto& frame : in_flight_) {
    staged += frame.is_msg() ? proto::msg_prefix::capacity : 0;
    if (frame.body.size() < gather_threshold) staged += frame.body.size();
  }
  if (staging_.capacity < staged) {
    auto& pool = loop_.write_buffers;
    if (!pool.empty() && pool.back().capacity >= staged) {
      staging_ = std::move(pool.back());
      pool.pop_back();
    } else {
      const std::size_t capacity = std::max(staged, min_staging);
      staging_.data = std::make_unique_for_overwrite<char[]>(capacity);
      staging_.capacity = capacity;
    }
  }
  // Buffers below point into staging_, which stays put until the write completes.
  char* out = staging_.data.get();
  const char* run_start = out;
  for (const auto& frame : in_flight_) {
    if (frame.is_msg()) out += proto::write_msg_prefix(out, frame.sid, frame.body.size());
    if (frame.body.size() < gather_threshold) {
      std::memcpy(out, frame.body.data(), frame.body.size());
      out += frame.body.size();
      continue;
    }
    if (out > run_start)
      buffers_.emplace_back(run_start, static_cast<std::size_t>(out - run_start));
    run_start = out;
    buffers_.emplace_back(frame.body.data(), frame.body.size());
  }
  if (out > run_start) buffers_.emplace_back(run_start, static_cast<std::size_t>(out - run_start));

  writing_ = true;
  last_progress_ = clock::now();
  last_unacked_.reset();
  in_flight_bytes_ = bytes;
  asio::async_write(
      socket_, buffers_,
      // Runs on the loop before each partial write: the one before it completed (or this
      // is the first), which is progress. Its handler below keeps the session alive.
      [this](const boost::system::error_code& ec, std::size_t /*written*/) -> std::size_t {
        last_progress_ = clock::now();
        return ec ? 0 : write_chunk;
      },
      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t written) {
        self->on_write(ec, written);
      });
}

void session::on_write(const boost::system::error_code& ec, std::size_t /*bytes*/) {
  writing_ = false;
  std::uint64_t pending = 0;
  {
    std::lock_guard lock(mutex_);
    queue_.complete(in_flight_bytes_);
    pending = queue_.pending_bytes();
  }
  in_flight_bytes_ = 0;
  in_flight_.clear();
  if (in_flight_.capacity() > retained_in_flight)
    std::vector<outbound_queue::entry>().swap(in_flight_);
  auto& pool = loop_.write_buffers;
  if (staging_.capacity != 0) {
    if (pool.size() < pooled_buffers && staging_.capacity <= max_pooled_capacity) {
      pool.push_back(std::move(staging_));
    }
    staging_ = {};
  }
  if (state_ == state::closed) return;
  if (ec) {
    close(close_reason::io_error);
    return;
  }
  if (read_paused_ && pending <= server_.settings.max_pending / 2 && state_ == state::open) {
    read_paused_ = false;
    resume_reading();
  }
  start_write();
}

// ---------------------------------------------------------------------------------------
// Periodic duties

void session::tick(clock::time_point now) {
  const auto& settings = server_.settings;
  if (state_ == state::closed) return;
  if (writing_) {
    // The peer reading lets the kernel send more, which changes what is unacknowledged,
    // long before the kernel has room for the next partial write.
    const auto unacked = unacked_bytes(socket_);
    if (unacked && unacked != last_unacked_) {
      if (last_unacked_) last_progress_ = now;
      last_unacked_ = unacked;
    }
  }
  if (writing_ && now - last_progress_ >= settings.write_deadline) {
    // Under the drop policy an open connection stays (its excess messages are dropped
    // when queued; a dead peer still ends as stale). A connection that is ending must
    // end, whatever the policy.
    if (settings.slow_consumer == slow_consumer_policy::close || state_ != state::open) {
      cut_slow_consumer("a write made no progress within write_deadline");
      return;
    }
  }
  if (state_ == state::lingering) {
    // A drain lingers until the client has everything (or closes, or the drain times out).
    const bool delivered =
        finish_reason_ == close_reason::server_shutdown && unacked_bytes(socket_).value_or(1) == 0;
    if (delivered || now >= linger_until_) {
      discard_input();  // what arrived since the last read must not turn the close into a reset
      close(finish_reason_);
    }
    return;
  }
  if (state_ != state::open) return;
  if (!writing_) release_write_storage();
  if (settings.ping_interval.count() == 0 || now < next_ping_) return;
  next_ping_ = now + settings.ping_interval;
  // A ping still queued behind a backlog (drop policy, slow reader) is not unanswered:
  // the client has not seen it. While the client reads (the writer took something since
  // the last tick) it is alive and gets no second ping; an interval without a take
  // counts like an unanswered ping, so a peer that reads nothing still ends as stale.
  const bool ping_waiting = ping_mark_ != 0;
  if (ping_waiting && taken_total_ == taken_at_tick_) ++pings_out_;
  taken_at_tick_ = taken_total_;
  if (pings_out_ >= settings.max_pings_out) {
    finish(close_reason::stale_connection, proto::error_code::stale_connection,
           "no pong to " + std::to_string(pings_out_) + " pings");
    return;
  }
  if (ping_waiting) return;
  scratch_.clear();
  proto::encode_ping(scratch_);
  queue_control(scratch_, /*ping=*/true);
}

// ---------------------------------------------------------------------------------------
// Ending

void session::remove_subscription(const std::shared_ptr<subscription>& sub) {
  sub->live.store(false, std::memory_order_release);
  {
    // Under the lock enqueue_msg holds: a delivery racing this `unsub` is either queued
    // before the `ok` that follows, or refused.
    std::lock_guard lock(mutex_);
    sub->ended_by_owner = true;
  }
  server_.index.remove(sub);
  const auto it = subscriptions_.find(sub->sid);
  if (it != subscriptions_.end() && it->second == sub) subscriptions_.erase(it);
}

void session::drop_all_subscriptions() {
  if (subscriptions_.empty()) return;
  // One exclusive lock and one cache drop for all of them: a connection with 65,536
  // subscriptions closes without taking the index's lock 65,536 times.
  std::vector<std::shared_ptr<subscription>> ending;
  ending.reserve(subscriptions_.size());
  for (auto& [sid, sub] : subscriptions_) {
    sub->live.store(false, std::memory_order_release);
    ending.push_back(sub);
  }
  server_.index.remove_all(ending);
  // Breaks the session -> subscription -> session cycle.
  subscriptions_.clear();
}

void session::finish(close_reason reason, std::optional<proto::error_code> code,
                     std::string_view message) {
  if (state_ != state::open) return;
  state_ = state::flushing;
  finish_reason_ = reason;
  drop_all_subscriptions();
  // From now on input is read and discarded, even if reading was paused.
  read_paused_ = false;
  resume_reading();
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
  }
  if (code) {
    std::string frame;
    proto::encode_err(frame, *code, message);
    queue_control(frame);
  }
  // Make sure the writer runs even if nothing else wakes it.
  loop_.batch.add(shared_from_this());
}

void session::end_flush() {
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (peer_closed_) {
    // Nothing more can arrive, so closing cannot reset: the kernel delivers the rest.
    close(finish_reason_);
    return;
  }
  state_ = state::lingering;
  if (finish_reason_ == close_reason::server_shutdown) {
    // Until the client has everything or closes; the drain timeout bounds it.
    linger_until_ = clock::time_point::max();
  } else {
    // The sweep that ends the linger may come one interval late: start it that much
    // sooner, so input is discarded for at most a second in all.
    linger_until_ = clock::now() + linger_after_error - server_.sweep_interval;
  }
  resume_reading();
}

void session::cut_slow_consumer(std::string_view why) {
  if (state_ == state::closed) return;
  server_.stats.slow_consumers.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t pending = 0;
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
    pending = queue_.pending_bytes();
    queue_.clear();
  }
  spdlog::warn("client {} ({}) is a slow consumer: {} ({} bytes pending)", client_id_, remote_, why,
               pending);
  drop_all_subscriptions();
  if (!writing_) {
    // Best effort: the err goes out only if the socket buffer takes it right now.
    std::string frame;
    proto::encode_err(frame, proto::error_code::slow_consumer,
                      "outbound backlog passed max_pending or a write missed write_deadline");
    boost::system::error_code ec;
    socket_.write_some(asio::buffer(frame), ec);
  }
  close(close_reason::slow_consumer);
}

void session::close(close_reason reason) {
  if (state_ == state::closed) return;
  const auto self = shared_from_this();  // unregistering below drops the registry's reference
  state_ = state::closed;
  drop_all_subscriptions();
  std::uint64_t dropped = 0;
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
    queue_.clear();
    dropped = dropped_;
  }
  boost::system::error_code ec;
  socket_.close(ec);
  loop_.sessions.erase(client_id_);
  if (counted_) server_.active_connections.fetch_sub(1, std::memory_order_relaxed);
  const auto level =
      reason == close_reason::client_closed || reason == close_reason::server_shutdown
          ? spdlog::level::info
          : spdlog::level::warn;
  spdlog::log(level, "client {} ({}{}{}{}) closed: {}, {} frames in{}", client_id_, remote_,
              name_.empty() ? "" : " \"", name_, name_.empty() ? "" : "\"", to_string(reason),
              frames_seen_,
              dropped == 0 ? std::string() : ", " + std::to_string(dropped) + " messages dropped");
  if (server_.on_session_closed) server_.on_session_closed();
}

}  // namespace tidings::broker
