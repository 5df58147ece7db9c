#include "tidings/client/connection.hpp"

#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "tidings/client/detail/confirmation_table.hpp"
#include "tidings/client/detail/frame_builder.hpp"
#include "tidings/client/detail/handshake.hpp"
#include "tidings/client/detail/reconnect_buffer.hpp"
#include "tidings/client/detail/subscription_registry.hpp"
#include "tidings/client/reconnect_policy.hpp"
#include "tidings/client/request_table.hpp"
#include "tidings/protocol/encoder.hpp"
#include "tidings/protocol/frame_decoder.hpp"
#include "tidings/protocol/limits.hpp"
#include "tidings/protocol/parser.hpp"

namespace tidings::client {
namespace detail {

namespace {

constexpr std::size_t read_buffer_size = 64 * 1024;

error client_error(errc code, std::string message = {}) {
  return {make_error_code(code), std::move(message)};
}

std::string make_inbox(const std::string& prefix) {
  static constexpr char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::random_device seed;
  std::mt19937_64 random(std::uint64_t{seed()} << 32 | seed());
  std::uniform_int_distribution<std::size_t> pick(0, sizeof(digits) - 2);
  std::string inbox = prefix + ".";
  for (int i = 0; i < 22; ++i)
    inbox += digits[pick(random)];
  return inbox;
}

}  // namespace

// All state of one logical connection, across reconnections. Lives in a shared_ptr so
// that socket and timer completions can keep it alive after the connection object is
// gone; every completion checks `generation_` to ignore results from an earlier socket.
//
// What it holds itself is the I/O: the socket, the writer, the reader, the timers
// (connect, pings, deadlines, reconnect, drain). The bookkeeping lives in socket-free
// parts, each tested on its own: handshake (the steps of one attempt), reconnect_policy
// (when to retry), subscription_registry (what to restore), confirmation_table and
// request_table (who waits for which answer, and whether its frame was sent on the
// current socket or is still buffered), reconnect_buffer (publishes made meanwhile) and
// frame_builder (the local checks of a publish or subscription, and the `pub` frame).
class connection_impl : public std::enable_shared_from_this<connection_impl> {
 public:
  connection_impl(asio::any_io_executor executor, options settings)
      : executor_(std::move(executor)),
        options_(std::move(settings)),
        resolver_(executor_),
        socket_(executor_),
        connect_timer_(executor_),
        ping_timer_(executor_),
        reconnect_timer_(executor_),
        deadline_timer_(executor_),
        drain_timer_(executor_),
        policy_(options_.reconnect),
        requests_(make_inbox(options_.inbox_prefix)),
        buffer_(options_.reconnect_buffer_bytes),
        read_buffer_(read_buffer_size),
        decoder_(handshake::server_frame_limit(protocol::default_max_frame)) {}

  const asio::any_io_executor& executor() const noexcept { return executor_; }
  connection_state state() const noexcept { return state_; }
  const server_info& info() const noexcept { return info_; }
  const connection_statistics& statistics() const noexcept { return stats_; }
  std::size_t pending_bytes() const noexcept {
    return live() ? out_.size() + writing_.size() : buffer_.size();
  }

  void start_connect(status_completion done) {
    if (state_ != connection_state::idle) {
      done(client_error(errc::invalid_argument, "async_connect was already called"));
      return;
    }
    state_ = connection_state::connecting;
    connect_done_ = std::move(done);
    begin_attempt();
  }

  error_code publish(std::string_view topic, std::string_view data, const publish_options& extra) {
    auto failure = enqueue_pub(topic, data, extra, 0);
    if (failure) return failure.code;
    ++stats_.published;
    return {};
  }

  void publish_confirmed(std::string_view topic, std::string_view data,
                         const publish_options& extra, status_completion done) {
    const std::int64_t id = next_id_++;
    const auto phase = live() ? outbound_phase::sent : outbound_phase::buffered;
    if (auto failure = enqueue_pub(topic, data, extra, id)) {
      done(failure);
      return;
    }
    ++stats_.published;
    acks_.add(id, phase, std::move(done));
  }

  std::uint64_t subscribe(std::string_view pattern, message_handler handler,
                          const subscribe_options& extra, status_completion done) {
    if (auto failure = check_subscription(pattern, handler, extra)) {
      if (!done) throw exception(failure);
      done(failure);
      return 0;
    }
    if (state_ == connection_state::closed || state_ == connection_state::draining) {
      if (done) done(client_error(errc::closed));
      return 0;
    }
    status_completion confirm;
    if (done) {
      // A refused or interrupted subscription must not linger locally (or be restored).
      confirm = [weak = weak_from_this(), sid = registry_.next_sid(),
                 done = std::move(done)](const error& result) mutable {
        if (result) {
          if (auto self = weak.lock()) self->registry_.remove(sid);
        }
        done(result);
      };
    }
    const auto sid =
        registry_.add(pattern, extra.queue, std::move(handler), extra.max, std::move(confirm));
    if (live()) {
      registry_.encode(sid, out_, next_id_, acks_);
      start_write();
    }
    return sid;
  }

  // On the executor.
  void unsubscribe(std::uint64_t sid) {
    if (!registry_.remove(sid)) return;
    if (live() && state_ != connection_state::draining) {
      protocol::encode_unsub(out_, protocol::unsub_message{sid, 0});
      start_write();
    }
  }

  // From any thread. Returns once the subscription has ended: its handler is not running
  // (unless the caller is that handler) and is never called again. Handlers run only
  // inside a read batch, and every batch applies the cancellations queued before it
  // first; so it is enough to queue the cancellation and, when a batch is running, to
  // wait for that batch to end. Waiting for the mutex alone is not enough: it is not fair,
  // and under a flood the reader takes it again for the next batch before a waiting thread
  // wakes (unsubscribe() then waited for the whole flood).
  void unsubscribe_from_any_thread(std::uint64_t sid) {
    std::unique_lock lock(batch_mutex_);
    if (in_batch_ && batch_thread_ == std::this_thread::get_id()) {
      // The executor's thread, inside a batch (a handler, or a completion it
      // triggered): the registry is ours to change.
      lock.unlock();
      unsubscribe(sid);
      return;
    }
    cancelled_.push_back(sid);
    if (in_batch_) {
      // Not bounded: the guarantee is that the handler has returned (see docs/CLIENT.md).
      const auto running = batches_ended_;
      ++unsubscribers_waiting_;
      batch_ended_.wait(lock, [&] { return batches_ended_ != running; });
      --unsubscribers_waiting_;
    }
    lock.unlock();
    asio::post(executor_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->apply_cancellations();
    });
  }

  void flush(std::chrono::milliseconds timeout, status_completion done) {
    if (!live()) {
      done(not_live_error());
      return;
    }
    const std::int64_t id = next_id_++;
    protocol::encode_ping(out_, id_text(id));
    acks_.add(id, outbound_phase::sent, std::move(done), clock::now() + timeout);
    arm_deadline_timer();
    start_write();
  }

  void request(std::string_view topic, std::string_view data, std::chrono::milliseconds timeout,
               const header_list* headers, request_completion done) {
    if (state_ == connection_state::closed || state_ == connection_state::draining) {
      done(client_error(errc::closed), {});
      return;
    }
    bool created = false;
    const auto inbox = registry_.ensure_inbox(requests_.inbox_pattern(), created);
    if (created && live()) {
      registry_.encode(inbox, out_, next_id_, acks_);
      start_write();
    }
    const auto phase = live() ? outbound_phase::sent : outbound_phase::buffered;
    const auto token = requests_.add(clock::now() + timeout, std::move(done), phase);
    const std::string reply = requests_.reply_topic(token);
    publish_options extra;
    extra.reply = reply;
    extra.headers = headers;
    if (auto failure = enqueue_pub(topic, data, extra, 0)) {
      if (auto pending = requests_.take(token)) (*pending)(failure, {});
      return;
    }
    ++stats_.published;
    arm_deadline_timer();
  }

  void drain(std::chrono::milliseconds timeout, status_completion done) {
    if (state_ == connection_state::closed || state_ == connection_state::draining) {
      done(client_error(errc::closed));
      return;
    }
    if (!live() || state_ != connection_state::connected) {
      // Nothing can be flushed: what is buffered for a next connection is lost.
      finish_close({});
      done(not_live_error());
      return;
    }
    apply_cancellations();  // nothing to restore or unsubscribe twice
    state_ = connection_state::draining;
    drain_done_ = std::move(done);
    registry_.encode_unsub_all(out_);
    // The pong proves that the server has processed the unsubscriptions and every
    // publish before them, and that every message sent to us before it has been read
    // and handed to its handler.
    const std::int64_t id = next_id_++;
    protocol::encode_ping(out_, id_text(id));
    acks_.add(id, outbound_phase::sent, [weak = weak_from_this()](const error& result) {
      if (auto self = weak.lock()) self->on_drain_pong(result);
    });
    start_write();
    drain_timer_.expires_after(timeout);
    drain_timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock(); self && self->state_ == connection_state::draining) {
        self->end_drain(client_error(errc::timeout, "drain timed out"));
      }
    });
  }

  void wait_writable(status_completion done) {
    if (state_ == connection_state::closed) {
      done(client_error(errc::closed));
      return;
    }
    if (!live() || pending_bytes() < options_.max_outbound_bytes / 2) {
      done({});
      return;
    }
    writable_waiters_.push_back(std::move(done));
  }

  void close() { finish_close({}); }

 private:
  using clock = std::chrono::steady_clock;

  // The server accepted `connect` on the current socket: every frame may go to it.
  bool live() const noexcept { return handshake_.accepted(); }

  bool handshaking() const noexcept {
    return state_ == connection_state::connecting || state_ == connection_state::reconnecting;
  }

  error not_live_error() const {
    switch (state_) {
      case connection_state::idle:
        return client_error(errc::not_connected);
      case connection_state::closed:
      case connection_state::draining:
        return client_error(errc::closed);
      default:
        return client_error(errc::disconnected, "reconnecting");
    }
  }

  // --- connecting -----------------------------------------------------------------

  void begin_attempt() {
    ++generation_;
    handshake_.begin();
    pings_out_ = 0;
    closing_error_ = {};
    decoder_ = protocol::frame_decoder(handshake::server_frame_limit(protocol::default_max_frame));
    error_code ignored;
    socket_.close(ignored);
    socket_ = tcp::socket(executor_);
    const auto generation = generation_;
    connect_timer_.expires_after(options_.connect_timeout);
    connect_timer_.async_wait([weak = weak_from_this(), generation](const error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || generation != self->generation_ || !self->handshake_.in_progress()) {
        return;
      }
      self->attempt_failed(client_error(errc::timeout, "connecting to " + self->address()));
    });
    resolver_.async_resolve(
        options_.host, std::to_string(options_.port),
        [self = shared_from_this(), generation](const error_code& ec,
                                                tcp::resolver::results_type results) {
          if (generation != self->generation_) return;
          if (ec) {
            self->attempt_failed({ec, "resolving " + self->options_.host});
            return;
          }
          asio::async_connect(
              self->socket_, results,
              [self, generation](const error_code& connect_ec, const tcp::endpoint&) {
                if (generation != self->generation_) return;
                if (connect_ec) {
                  self->attempt_failed({connect_ec, "connecting to " + self->address()});
                  return;
                }
                error_code ignored_ec;
                self->socket_.set_option(tcp::no_delay(true), ignored_ec);
                self->handshake_.transport_up();
                self->start_read();
              });
        });
  }

  std::string address() const { return options_.host + ":" + std::to_string(options_.port); }

  void on_info(const protocol::info_message& info) {
    info_.server = info.server;
    info_.version = info.version;
    info_.client_id = info.client_id;
    info_.max_frame = info.max_frame;
    info_.max_pending = info.max_pending;
    info_.ping_interval_ms = info.ping_interval_ms;
    info_.auth_required = info.auth_required;
    // The decoder returned this frame whole and holds nothing partial: safe to replace.
    decoder_ = protocol::frame_decoder(handshake::server_frame_limit(info.max_frame));
    // Only `connect` goes now. Subscriptions and buffered publishes wait for its `ok`,
    // so that a refusal (too_many_connections, a reset) takes nothing with it.
    out_.clear();
    handshake_.on_info(options_, next_id_++, out_);
    start_write();
  }

  void on_connected() {
    connect_timer_.cancel();
    // Handles dropped from other threads meanwhile are not restored (nor unsubscribed:
    // this connection never had them).
    apply_cancellations();
    handshake_.on_accepted();
    state_ = connection_state::connected;
    policy_.reset();
    // Subscriptions first, then what was published while disconnected: the server
    // handles one connection's frames in order, so buffered messages that match our own
    // subscriptions are delivered to them.
    registry_.encode_all(out_, next_id_, acks_);
    buffer_.move_to(out_);
    acks_.mark_buffered_sent();
    requests_.mark_buffered_sent();
    start_write();
    start_ping_timer();
    if (connect_done_) {
      std::exchange(connect_done_, {})({});
    } else {
      ++stats_.reconnects;
      notify(options_.on_reconnected);
    }
    release_writable_waiters();
  }

  void attempt_failed(error failure) {
    drop_socket();
    if (connect_done_) {
      // A failed first connection is reported, not retried.
      state_ = connection_state::idle;
      fail_waiting_for_first_connection(failure);
      std::exchange(connect_done_, {})(failure);
      return;
    }
    // The server never accepted this attempt, so nothing of ours went on it: the buffer
    // and the confirmations waiting for it stay for the next attempt.
    last_error_ = failure.code;
    schedule_reconnect();
  }

  // What was buffered for a first connection that failed would otherwise wait for a
  // connection nobody is going to make.
  void fail_waiting_for_first_connection(const error& failure) {
    stats_.lost_on_disconnect += buffer_.clear();
    for (auto& done : acks_.take_all())
      done(failure);
    for (auto& pending : requests_.take_all())
      pending(failure, {});
    for (auto& confirm : registry_.take_unsent_confirmations())
      confirm(failure);
  }

  void schedule_reconnect() {
    const auto delay = policy_.next_delay();
    if (!delay) {
      finish_close(last_error_);
      return;
    }
    reconnect_timer_.expires_after(*delay);
    reconnect_timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->state_ != connection_state::reconnecting) return;
      self->begin_attempt();
    });
  }

  // --- losing and closing ---------------------------------------------------------

  // Closes the socket and discards what was queued on it: a frame half written to a
  // dead socket must never be replayed on the next one.
  void drop_socket() {
    ++generation_;
    if (live()) stats_.lost_on_disconnect += out_.size() + writing_.size();
    handshake_.reset();
    error_code ignored;
    socket_.close(ignored);
    resolver_.cancel();
    connect_timer_.cancel();
    ping_timer_.cancel();
    out_.clear();
    writing_.clear();
    write_in_flight_ = false;
  }

  void lose_connection(error failure) {
    if (closing_error_.code) failure = closing_error_;
    if (state_ == connection_state::draining) {
      end_drain(failure);
      return;
    }
    if (handshaking()) {
      attempt_failed(std::move(failure));
      return;
    }
    drop_socket();
    last_error_ = failure.code;
    state_ = connection_state::reconnecting;
    // The answers to what was sent on the lost socket will never come: fail those now.
    // What is buffered waits for the next connection.
    const error lost = client_error(
        errc::disconnected, failure.message.empty() ? failure.code.message() : failure.message);
    for (auto& done : acks_.take_sent())
      done(lost);
    for (auto& pending : requests_.take_sent())
      pending(lost, {});
    notify(options_.on_disconnected, failure.code);
    release_writable_waiters();
    schedule_reconnect();
  }

  void finish_close(error_code reason) {
    if (state_ == connection_state::closed) return;
    state_ = connection_state::closed;
    drop_socket();
    reconnect_timer_.cancel();
    deadline_timer_.cancel();
    drain_timer_.cancel();
    stats_.lost_on_disconnect += buffer_.clear();
    const error closed = client_error(errc::closed);
    for (auto& done : acks_.take_all())
      done(closed);
    for (auto& pending : requests_.take_all())
      pending(closed, {});
    for (auto& confirm : registry_.clear())
      confirm(closed);
    release_writable_waiters();
    if (connect_done_) std::exchange(connect_done_, {})(closed);
    if (drain_done_) std::exchange(drain_done_, {})(closed);
    notify(options_.on_closed, reason);
  }

  void apply_cancellations() {
    {
      const std::lock_guard lock(batch_mutex_);
      if (cancelled_.empty()) return;
      applying_.swap(cancelled_);
    }
    for (const auto sid : applying_)
      unsubscribe(sid);
    applying_.clear();
  }

  void on_drain_pong(const error& result) {
    if (state_ != connection_state::draining) return;
    if (result) {
      end_drain(result);
      return;
    }
    drain_pong_seen_ = true;
    for (auto& confirm : registry_.clear())
      confirm(client_error(errc::closed));
    if (!write_in_flight_ && out_.empty()) end_drain({});
  }

  void end_drain(const error& result) {
    auto done = std::exchange(drain_done_, {});
    if (live()) {
      error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_both, ignored);
    }
    finish_close(result.code);
    if (done) done(result);
  }

  // --- reading --------------------------------------------------------------------

  void start_read() {
    socket_.async_read_some(asio::buffer(read_buffer_),
                            [self = shared_from_this(), generation = generation_](
                                const error_code& ec, std::size_t size) {
                              if (generation != self->generation_) return;
                              self->on_read(ec, size);
                            });
  }

  void on_read(const error_code& ec, std::size_t size) {
    if (ec) {
      lose_connection({ec == asio::error::eof ? make_error_code(errc::disconnected) : ec,
                       "reading from " + address()});
      return;
    }
    // The batch: handlers run only here, and unsubscriptions made from other threads take
    // effect before it (the mutex is taken at its start and end: once per read, not per
    // message).
    const batch_scope batch(*this);
    for (const auto sid : applying_)
      unsubscribe(sid);
    applying_.clear();
    const auto generation = generation_;
    std::string_view input(read_buffer_.data(), size);
    bool got_frame = false;
    for (;;) {
      const auto result = decoder_.next(input);
      input.remove_prefix(result.consumed);
      if (result.state == protocol::frame_decoder::status::need_more) break;
      if (result.state == protocol::frame_decoder::status::error) {
        lose_connection(client_error(errc::protocol_violation,
                                     "server frame of " + std::to_string(result.length) +
                                         " bytes is outside the allowed range"));
        return;
      }
      got_frame = true;
      handle_frame(result.body);
      // A handler may have closed the connection, or the frame ended it.
      if (generation != generation_) return;
    }
    // Any frame proves that the server is alive, not only a pong: under the `drop`
    // slow-consumer policy the server's pong waits behind everything queued for us, so a
    // client reading a big backlog slowly would otherwise give up on a server that is
    // busy sending to it. Once per read, not per message.
    if (got_frame) pings_out_ = 0;
    start_read();
  }

  void handle_frame(std::string_view body) {
    const auto parsed = parser_.parse(body, frame_);
    if (!parsed) {
      lose_connection(
          client_error(errc::protocol_violation,
                       "unparsable server frame: " + std::string(parsed.error.message)));
      return;
    }
    if (!handshake_.got_info() && frame_.kind != protocol::op::info) {
      lose_connection(
          client_error(errc::protocol_violation, "the first server frame was not info"));
      return;
    }
    switch (frame_.kind) {
      case protocol::op::info:
        if (!handshake_.got_info()) on_info(std::get<protocol::info_message>(frame_.body));
        break;
      case protocol::op::msg:
        on_msg(std::get<protocol::msg_message>(frame_.body));
        break;
      case protocol::op::ok:
        on_ok();
        break;
      case protocol::op::err:
        on_err(std::get<protocol::err_message>(frame_.body));
        break;
      case protocol::op::ping:
        protocol::encode_pong(out_);
        start_write();
        break;
      case protocol::op::pong:
        // pings_out_ is reset by on_read for every frame, this one included.
        if (frame_.id.type == protocol::request_id::kind::integer)
          complete_ack(frame_.id.integer, {});
        break;
      default:
        lose_connection(client_error(errc::protocol_violation, "a client op from the server"));
        break;
    }
  }

  void on_msg(const protocol::msg_message& msg) {
    const message_view view{msg.sid, msg.topic, msg.data, msg.reply, msg.headers};
    if (msg.sid == registry_.inbox_sid() && msg.sid != 0) {
      if (auto pending = requests_.take(msg.topic)) {
        ++stats_.delivered;
        (*pending)({}, message(view));
      }
      return;
    }
    const auto handler = registry_.on_delivery(msg.sid);
    if (!handler) return;  // unsubscribed while the message was on its way
    ++stats_.delivered;
    (*handler)(view);
  }

  void on_ok() {
    if (frame_.id.type != protocol::request_id::kind::integer) return;
    if (handshaking() && handshake_.answers_connect(frame_.id.integer)) {
      on_connected();
      return;
    }
    complete_ack(frame_.id.integer, {});
  }

  void on_err(const protocol::err_message& err) {
    const auto code = protocol::error_code_from_wire(err.code);
    error failure{
        code ? make_error_code(*code) : make_error_code(errc::protocol_violation),
        code ? std::string(err.message) : std::string(err.code) + ": " + std::string(err.message)};
    if (code && protocol::closes_connection(*code)) closing_error_ = failure;
    if (frame_.id.type == protocol::request_id::kind::integer) {
      if (handshaking() && handshake_.answers_connect(frame_.id.integer)) {
        // A refused `connect` (credentials) would be refused again: give up.
        connect_refused(failure);
        return;
      }
      if (complete_ack(frame_.id.integer, failure)) return;
    }
    if (code == protocol::error_code::no_responders && !err.topic.empty()) {
      if (auto pending = requests_.take(err.topic)) {
        (*pending)(failure, {});
        return;
      }
    }
    notify(options_.on_error, failure);
  }

  void connect_refused(const error& failure) {
    if (connect_done_) {
      drop_socket();
      state_ = connection_state::idle;
      fail_waiting_for_first_connection(failure);
      std::exchange(connect_done_, {})(failure);
      return;
    }
    notify(options_.on_error, failure);
    finish_close(failure.code);
  }

  bool complete_ack(std::int64_t id, const error& result) {
    auto done = acks_.take(id);
    if (!done) return false;
    (*done)(result);
    return true;
  }

  // --- writing --------------------------------------------------------------------

  error enqueue_pub(std::string_view topic, std::string_view data, const publish_options& extra,
                    std::int64_t id) {
    if (auto failure = check_publish(topic, data, extra, pub_headers_)) return failure;
    const bool to_socket = live();
    if (to_socket) {
      if (out_.size() + writing_.size() >= options_.max_outbound_bytes) {
        return client_error(errc::outbound_full);
      }
    } else if (!handshaking()) {
      return not_live_error();
    }
    std::string& target = to_socket ? out_ : buffer_.frames();
    const std::size_t start = target.size();
    const std::uint64_t max_frame =
        info_.max_frame != 0 ? info_.max_frame : protocol::default_max_frame;
    if (auto failure = append_pub(target, topic, data, extra.reply, pub_headers_, id, max_frame)) {
      return failure;
    }
    if (!to_socket && !buffer_.fits()) {
      buffer_.truncate(start);
      return client_error(
          errc::reconnect_buffer_full,
          "disconnected, and " + std::to_string(buffer_.limit()) + " bytes are already buffered");
    }
    if (to_socket) start_write();
    return {};
  }

  void start_write() {
    if (write_in_flight_ || out_.empty() || !handshake_.socket_writable()) return;
    std::swap(out_, writing_);
    write_in_flight_ = true;
    asio::async_write(
        socket_, asio::buffer(writing_),
        [self = shared_from_this(), generation = generation_](const error_code& ec, std::size_t) {
          if (generation != self->generation_) return;
          self->on_write(ec);
        });
  }

  void on_write(const error_code& ec) {
    write_in_flight_ = false;
    writing_.clear();
    if (ec) {
      lose_connection({ec, "writing to " + address()});
      return;
    }
    if (out_.empty() && writing_.capacity() > 4 * read_buffer_size) {
      // Give back the memory of a burst rather than keeping its high-water mark.
      std::string().swap(writing_);
    }
    if (pending_bytes() < options_.max_outbound_bytes / 2) release_writable_waiters();
    if (state_ == connection_state::draining && drain_pong_seen_ && out_.empty()) {
      end_drain({});
      return;
    }
    start_write();
  }

  void release_writable_waiters() {
    const error result = state_ == connection_state::closed ? client_error(errc::closed) : error{};
    for (auto& waiter : std::exchange(writable_waiters_, {}))
      waiter(result);
  }

  // --- timers ---------------------------------------------------------------------

  void start_ping_timer() {
    if (options_.ping_interval.count() <= 0) return;
    ping_timer_.expires_after(options_.ping_interval);
    ping_timer_.async_wait(
        [weak = weak_from_this(), generation = generation_](const error_code& ec) {
          auto self = weak.lock();
          if (ec || !self || generation != self->generation_) return;
          if (self->pings_out_ >= self->options_.max_pings_out) {
            self->lose_connection(client_error(
                errc::server_unresponsive, std::to_string(self->pings_out_) + " pings unanswered"));
            return;
          }
          ++self->pings_out_;
          protocol::encode_ping(self->out_);
          self->start_write();
          self->start_ping_timer();
        });
  }

  // One timer for the deadlines of requests and flushes: armed for the earliest.
  void arm_deadline_timer() {
    std::optional<clock::time_point> next = requests_.next_deadline();
    if (const auto ack = acks_.next_deadline(); ack && (!next || *ack < *next)) next = ack;
    if (!next || (deadline_timer_armed_ && deadline_timer_at_ <= *next)) return;
    deadline_timer_armed_ = true;
    deadline_timer_at_ = *next;
    deadline_timer_.expires_at(*next);
    deadline_timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
      auto self = weak.lock();
      if (!self || ec == asio::error::operation_aborted) {
        // Cancelled by an earlier deadline (which re-armed it) or by close.
        return;
      }
      self->deadline_timer_armed_ = false;
      const auto now = clock::now();
      for (auto& pending : self->requests_.take_expired(now))
        pending(client_error(errc::timeout, "no reply in time"), {});
      for (auto& done : self->acks_.take_expired(now))
        done(client_error(errc::timeout));
      self->arm_deadline_timer();
    });
  }

  template <class Callback, class... Args>
  void notify(const Callback& callback, Args&&... args) {
    if (!callback) return;
    // Posted, so that a callback that calls back into the connection never runs in the
    // middle of a state change.
    asio::post(executor_,
               [callback, ... values = std::forward<Args>(args)]() { callback(values...); });
  }

  asio::any_io_executor executor_;
  options options_;
  tcp::resolver resolver_;
  tcp::socket socket_;
  asio::steady_timer connect_timer_;
  asio::steady_timer ping_timer_;
  asio::steady_timer reconnect_timer_;
  asio::steady_timer deadline_timer_;
  asio::steady_timer drain_timer_;

  // The socket-free parts.
  reconnect_policy policy_;
  handshake handshake_;
  subscription_registry registry_;
  confirmation_table<status_completion> acks_;
  request_table<request_completion> requests_;
  reconnect_buffer buffer_;

  connection_state state_ = connection_state::idle;
  std::uint64_t generation_ = 0;
  server_info info_;
  status_completion connect_done_;
  error closing_error_;    // the closing `err` the server sent, if any
  error_code last_error_;  // why the last connection or attempt ended
  std::uint32_t pings_out_ = 0;
  std::int64_t next_id_ = 1;

  std::vector<char> read_buffer_;
  protocol::frame_decoder decoder_;
  protocol::server_parser parser_;
  protocol::server_frame frame_;

  std::string pub_headers_;  // scratch: the encoded headers of the publish being queued
  std::string out_;          // frames waiting for the current write to finish
  std::string writing_;      // frames being written
  bool write_in_flight_ = false;
  std::vector<status_completion> writable_waiters_;

  bool deadline_timer_armed_ = false;
  clock::time_point deadline_timer_at_{};

  status_completion drain_done_;
  bool drain_pong_seen_ = false;
  connection_statistics stats_;

  // subscription::unsubscribe() from any thread (see unsubscribe_from_any_thread). A
  // batch is marked under the mutex at its start and end; the end wakes the threads that
  // wait for it.
  class batch_scope {
   public:
    // Takes the queued cancellations (into applying_, for the caller to apply before it
    // delivers anything) in the same step as it marks the batch: a cancellation queued
    // later waits for the batch to end.
    explicit batch_scope(connection_impl& owner) : owner_(owner) {
      const std::lock_guard lock(owner_.batch_mutex_);
      owner_.applying_.swap(owner_.cancelled_);
      owner_.in_batch_ = true;
      owner_.batch_thread_ = std::this_thread::get_id();
    }
    ~batch_scope() {
      const std::lock_guard lock(owner_.batch_mutex_);
      owner_.in_batch_ = false;
      ++owner_.batches_ended_;
      if (owner_.unsubscribers_waiting_ > 0) owner_.batch_ended_.notify_all();
    }
    batch_scope(const batch_scope&) = delete;
    batch_scope& operator=(const batch_scope&) = delete;

   private:
    connection_impl& owner_;
  };
  std::mutex batch_mutex_;
  std::condition_variable batch_ended_;
  bool in_batch_ = false;                 // under batch_mutex_
  std::thread::id batch_thread_;          // under batch_mutex_
  std::uint64_t batches_ended_ = 0;       // under batch_mutex_
  int unsubscribers_waiting_ = 0;         // under batch_mutex_
  std::vector<std::uint64_t> cancelled_;  // under batch_mutex_
  std::vector<std::uint64_t> applying_;   // on the executor: cancelled_, being applied
};

}  // namespace detail

subscription& subscription::operator=(subscription&& other) noexcept {
  if (this != &other) {
    unsubscribe();
    owner_ = std::move(other.owner_);
    sid_ = std::exchange(other.sid_, 0);
  }
  return *this;
}

void subscription::unsubscribe() {
  const auto sid = std::exchange(sid_, 0);
  if (sid == 0) return;
  if (auto owner = owner_.lock()) owner->unsubscribe_from_any_thread(sid);
}

connection::connection(executor_type executor, options settings)
    : executor_(executor),
      impl_(std::make_shared<detail::connection_impl>(std::move(executor), std::move(settings))) {}

connection::~connection() {
  impl_->close();
}

error_code connection::publish(std::string_view topic, std::string_view data,
                               const publish_options& extra) {
  return impl_->publish(topic, data, extra);
}

subscription connection::subscribe(std::string_view pattern, message_handler handler,
                                   const subscribe_options& extra) {
  const auto sid = impl_->subscribe(pattern, std::move(handler), extra, nullptr);
  if (sid == 0) throw exception(error{make_error_code(errc::closed), "the connection is closed"});
  return subscription{impl_, sid};
}

void connection::close() {
  impl_->close();
}

connection_state connection::state() const noexcept {
  return impl_->state();
}

const server_info& connection::info() const noexcept {
  return impl_->info();
}

const connection_statistics& connection::statistics() const noexcept {
  return impl_->statistics();
}

std::size_t connection::pending_bytes() const noexcept {
  return impl_->pending_bytes();
}

void connection::start_connect(detail::status_completion done) {
  impl_->start_connect(std::move(done));
}

void connection::publish_confirmed(std::string_view topic, std::string_view data,
                                   const publish_options& extra, detail::status_completion done) {
  impl_->publish_confirmed(topic, data, extra, std::move(done));
}

std::uint64_t connection::subscribe_confirmed(std::string_view pattern, message_handler handler,
                                              const subscribe_options& extra,
                                              detail::status_completion done) {
  return impl_->subscribe(pattern, std::move(handler), extra, std::move(done));
}

void connection::flush(std::chrono::milliseconds timeout, detail::status_completion done) {
  impl_->flush(timeout, std::move(done));
}

void connection::request(std::string_view topic, std::string_view data,
                         std::chrono::milliseconds timeout, const header_list* headers,
                         detail::request_completion done) {
  impl_->request(topic, data, timeout, headers, std::move(done));
}

void connection::drain(std::chrono::milliseconds timeout, detail::status_completion done) {
  impl_->drain(timeout, std::move(done));
}

void connection::wait_writable(detail::status_completion done) {
  impl_->wait_writable(std::move(done));
}

}  // namespace tidings::client
