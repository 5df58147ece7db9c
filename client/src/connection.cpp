#include "tidings/client/connection.hpp"

#include <algorithm>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tidings/client/reconnect_policy.hpp"
#include "tidings/client/request_table.hpp"
#include "tidings/protocol/encoder.hpp"
#include "tidings/protocol/frame_decoder.hpp"
#include "tidings/protocol/json.hpp"
#include "tidings/protocol/limits.hpp"
#include "tidings/protocol/parser.hpp"
#include "tidings/protocol/topic.hpp"

namespace tidings::client {
namespace detail {

namespace {

constexpr std::size_t read_buffer_size = 64 * 1024;

error local_error(protocol::error_code code, std::string message) {
  return {make_error_code(code), std::move(message)};
}

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

std::string id_text(std::int64_t id) {
  std::string text;
  protocol::append_integer(text, id);
  return text;
}

}  // namespace

// All state of one logical connection, across reconnections. Lives in a shared_ptr so
// that socket and timer completions can keep it alive after the connection object is
// gone; every completion checks `generation_` to ignore results from an earlier socket.
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
        request_timer_(executor_),
        drain_timer_(executor_),
        policy_(options_.reconnect),
        read_buffer_(read_buffer_size),
        decoder_(server_frame_limit(protocol::default_max_frame)),
        requests_(make_inbox(options_.inbox_prefix)) {}

  const asio::any_io_executor& executor() const noexcept { return executor_; }
  connection_state state() const noexcept { return state_; }
  const server_info& info() const noexcept { return info_; }
  const connection_statistics& statistics() const noexcept { return stats_; }
  std::size_t pending_bytes() const noexcept {
    return live_ ? out_.size() + writing_.size() : reconnect_buffer_.size();
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
    const bool was_live = live_;
    if (auto failure = enqueue_pub(topic, data, extra, id)) {
      done(failure);
      return;
    }
    ++stats_.published;
    (was_live ? acks_ : buffered_acks_).emplace(id, pending_ack{std::move(done), nullptr});
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
    const std::uint64_t sid = next_sid_++;
    auto& entry = subscriptions_[sid];
    entry.pattern = pattern;
    entry.queue = extra.queue;
    entry.handler = std::make_shared<message_handler>(std::move(handler));
    entry.max = extra.max;
    if (done) {
      // A refused or interrupted subscription must not linger locally (or be restored).
      entry.confirm = [weak = weak_from_this(), sid,
                       done = std::move(done)](const error& result) mutable {
        if (result) {
          if (auto self = weak.lock()) self->subscriptions_.erase(sid);
        }
        done(result);
      };
    }
    if (live_) {
      send_subscription(sid, entry);
      start_write();
    }
    return sid;
  }

  void unsubscribe(std::uint64_t sid) {
    if (subscriptions_.erase(sid) == 0) return;
    if (live_ && state_ != connection_state::draining) {
      protocol::encode_unsub(out_, protocol::unsub_message{sid, 0});
      start_write();
    }
  }

  void flush(std::chrono::milliseconds timeout, status_completion done) {
    if (!live_) {
      done(not_live_error());
      return;
    }
    const std::int64_t id = next_id_++;
    protocol::encode_ping(out_, id_text(id));
    add_ack(id, std::move(done), timeout);
    start_write();
  }

  void request(std::string_view topic, std::string_view data, std::chrono::milliseconds timeout,
               const header_list* headers, request_completion done) {
    if (state_ == connection_state::closed || state_ == connection_state::draining) {
      done(client_error(errc::closed), {});
      return;
    }
    ensure_inbox();
    const auto deadline = request_table<request_completion>::clock::now() + timeout;
    const auto token = requests_.add(deadline, std::move(done));
    const std::string reply = requests_.reply_topic(token);
    publish_options extra;
    extra.reply = reply;
    extra.headers = headers;
    if (auto failure = enqueue_pub(topic, data, extra, 0)) {
      if (auto pending = requests_.take(token)) (*pending)(failure, {});
      return;
    }
    ++stats_.published;
    arm_request_timer();
  }

  void drain(std::chrono::milliseconds timeout, status_completion done) {
    if (state_ == connection_state::closed || state_ == connection_state::draining) {
      done(client_error(errc::closed));
      return;
    }
    if (!live_ || state_ != connection_state::connected) {
      // Nothing can be flushed: what is buffered for a next connection is lost.
      finish_close({});
      done(not_live_error());
      return;
    }
    state_ = connection_state::draining;
    drain_done_ = std::move(done);
    for (const auto& [sid, entry] : subscriptions_) {
      protocol::encode_unsub(out_, protocol::unsub_message{sid, 0});
    }
    // The pong proves that the server has processed the unsubscriptions and every
    // publish before them, and that every message sent to us before it has been read
    // and handed to its handler.
    const std::int64_t id = next_id_++;
    protocol::encode_ping(out_, id_text(id));
    acks_.emplace(id, pending_ack{[weak = weak_from_this()](const error& result) {
                                    if (auto self = weak.lock()) self->on_drain_pong(result);
                                  },
                                  nullptr});
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
    if (!live_ || pending_bytes() < options_.max_outbound_bytes / 2) {
      done({});
      return;
    }
    writable_waiters_.push_back(std::move(done));
  }

  void close() { finish_close({}); }

 private:
  struct subscription_entry {
    std::string pattern;
    std::string queue;
    std::shared_ptr<message_handler> handler;  // null for the request inbox
    std::uint64_t max = 0;
    std::uint64_t delivered = 0;
    status_completion confirm;  // set until the first `sub` with an id is sent
  };

  struct pending_ack {
    status_completion done;
    std::shared_ptr<asio::steady_timer> timer;
  };

  static std::uint32_t server_frame_limit(std::uint64_t max_frame) {
    const auto limit = max_frame + protocol::server_frame_allowance;
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(limit, UINT32_MAX));
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
    live_ = false;
    got_info_ = false;
    pings_out_ = 0;
    closing_error_ = {};
    decoder_ = protocol::frame_decoder(server_frame_limit(protocol::default_max_frame));
    error_code ignored;
    socket_.close(ignored);
    socket_ = tcp::socket(executor_);
    const auto generation = generation_;
    connect_timer_.expires_after(options_.connect_timeout);
    connect_timer_.async_wait([weak = weak_from_this(), generation](const error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || generation != self->generation_ || !self->handshaking()) return;
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
                self->start_read();
              });
        });
  }

  std::string address() const { return options_.host + ":" + std::to_string(options_.port); }

  bool handshaking() const noexcept {
    return state_ == connection_state::connecting || state_ == connection_state::reconnecting;
  }

  void on_info(const protocol::info_message& info) {
    got_info_ = true;
    info_.server = info.server;
    info_.version = info.version;
    info_.client_id = info.client_id;
    info_.max_frame = info.max_frame;
    info_.max_pending = info.max_pending;
    info_.ping_interval_ms = info.ping_interval_ms;
    info_.auth_required = info.auth_required;
    // The decoder returned this frame whole and holds nothing partial: safe to replace.
    decoder_ = protocol::frame_decoder(server_frame_limit(info.max_frame));

    connect_id_ = next_id_++;
    protocol::connect_message hello;
    if (!options_.name.empty()) hello.name = options_.name;
    if (options_.token) hello.token = *options_.token;
    if (options_.user) hello.user = *options_.user;
    if (options_.pass) hello.pass = *options_.pass;
    hello.echo = options_.echo;
    out_.clear();
    protocol::encode_connect(out_, hello, id_text(connect_id_));
    // Subscriptions first, then what was published while disconnected: the server
    // handles one connection's frames in order, so buffered messages that match our own
    // subscriptions are delivered to them.
    for (auto& [sid, entry] : subscriptions_)
      send_subscription(sid, entry);
    out_ += reconnect_buffer_;
    reconnect_buffer_.clear();
    reconnect_buffer_.shrink_to_fit();
    for (auto& [id, ack] : buffered_acks_)
      acks_.emplace(id, std::move(ack));
    buffered_acks_.clear();
    live_ = true;
    start_write();
  }

  void on_connected() {
    connect_timer_.cancel();
    state_ = connection_state::connected;
    policy_.reset();
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
      fail_acks(failure);
      std::exchange(connect_done_, {})(failure);
      return;
    }
    last_error_ = failure.code;
    schedule_reconnect();
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
    live_ = false;
    error_code ignored;
    socket_.close(ignored);
    resolver_.cancel();
    connect_timer_.cancel();
    ping_timer_.cancel();
    stats_.lost_on_disconnect += out_.size() + writing_.size();
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
    fail_acks(client_error(errc::disconnected, failure.code.message()));
    last_error_ = failure.code;
    state_ = connection_state::reconnecting;
    notify(options_.on_disconnected, failure.code);
    release_writable_waiters();
    schedule_reconnect();
  }

  void finish_close(error_code reason) {
    if (state_ == connection_state::closed) return;
    state_ = connection_state::closed;
    drop_socket();
    reconnect_timer_.cancel();
    request_timer_.cancel();
    drain_timer_.cancel();
    const error closed = client_error(errc::closed);
    fail_acks(closed);
    for (auto& [id, ack] : std::exchange(buffered_acks_, {}))
      ack.done(closed);
    for (auto& pending : requests_.take_all())
      pending(closed, {});
    auto subscriptions = std::exchange(subscriptions_, {});
    for (auto& [sid, entry] : subscriptions) {
      if (entry.confirm) entry.confirm(closed);
    }
    reconnect_buffer_.clear();
    release_writable_waiters();
    if (connect_done_) std::exchange(connect_done_, {})(closed);
    if (drain_done_) std::exchange(drain_done_, {})(closed);
    notify(options_.on_closed, reason);
  }

  void fail_acks(const error& failure) {
    auto acks = std::exchange(acks_, {});
    for (auto& [id, ack] : acks) {
      if (ack.timer) ack.timer->cancel();
      ack.done(failure);
    }
  }

  void on_drain_pong(const error& result) {
    if (state_ != connection_state::draining) return;
    if (result) {
      end_drain(result);
      return;
    }
    drain_pong_seen_ = true;
    subscriptions_.clear();
    if (!write_in_flight_ && out_.empty()) end_drain({});
  }

  void end_drain(const error& result) {
    auto done = std::exchange(drain_done_, {});
    if (live_) {
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
    const auto generation = generation_;
    std::string_view input(read_buffer_.data(), size);
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
      handle_frame(result.body);
      // A handler may have closed the connection, or the frame ended it.
      if (generation != generation_) return;
    }
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
    if (!got_info_ && frame_.kind != protocol::op::info) {
      lose_connection(
          client_error(errc::protocol_violation, "the first server frame was not info"));
      return;
    }
    switch (frame_.kind) {
      case protocol::op::info:
        if (!got_info_) on_info(std::get<protocol::info_message>(frame_.body));
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
        pings_out_ = 0;
        if (frame_.id.type == protocol::request_id::kind::integer)
          complete_ack(frame_.id.integer, {});
        break;
      default:
        lose_connection(client_error(errc::protocol_violation, "a client op from the server"));
        break;
    }
  }

  void on_msg(const protocol::msg_message& msg) {
    if (msg.sid == inbox_sid_ && inbox_sid_ != 0) {
      if (auto pending = requests_.take(msg.topic)) {
        ++stats_.delivered;
        (*pending)({}, message(message_view{msg.sid, msg.topic, msg.data, msg.reply, msg.headers}));
      }
      return;
    }
    const auto found = subscriptions_.find(msg.sid);
    if (found == subscriptions_.end()) return;  // unsubscribed while the message was on its way
    auto& entry = found->second;
    ++entry.delivered;
    ++stats_.delivered;
    auto handler = entry.handler;  // the handler may unsubscribe itself
    if (entry.max != 0 && entry.delivered >= entry.max) subscriptions_.erase(found);
    (*handler)(message_view{msg.sid, msg.topic, msg.data, msg.reply, msg.headers});
  }

  void on_ok() {
    if (frame_.id.type != protocol::request_id::kind::integer) return;
    if (frame_.id.integer == connect_id_ && handshaking()) {
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
      if (frame_.id.integer == connect_id_ && handshaking()) {
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
      std::exchange(connect_done_, {})(failure);
      return;
    }
    notify(options_.on_error, failure);
    finish_close(failure.code);
  }

  bool complete_ack(std::int64_t id, const error& result) {
    const auto found = acks_.find(id);
    if (found == acks_.end()) return false;
    auto ack = std::move(found->second);
    acks_.erase(found);
    if (ack.timer) ack.timer->cancel();
    ack.done(result);
    return true;
  }

  void add_ack(std::int64_t id, status_completion done, std::chrono::milliseconds timeout) {
    auto timer = std::make_shared<asio::steady_timer>(executor_, timeout);
    timer->async_wait([weak = weak_from_this(), id](const error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->complete_ack(id, client_error(errc::timeout));
    });
    acks_.emplace(id, pending_ack{std::move(done), std::move(timer)});
  }

  // --- writing --------------------------------------------------------------------

  error enqueue_pub(std::string_view topic, std::string_view data, const publish_options& extra,
                    std::int64_t id) {
    if (!protocol::is_valid_topic(topic)) {
      return local_error(protocol::error_code::invalid_topic,
                         "not a valid topic: '" + std::string(topic) + "'");
    }
    if (protocol::is_reserved_topic(topic)) {
      return local_error(protocol::error_code::permission_denied,
                         "topics starting with $ are reserved");
    }
    if (!extra.reply.empty() && !protocol::is_valid_topic(extra.reply)) {
      return local_error(protocol::error_code::invalid_topic,
                         "not a valid reply topic: '" + std::string(extra.reply) + "'");
    }
    // The frame's own object is level 1, so data may nest one level less.
    if (!protocol::json::is_valid(data, protocol::max_json_depth - 1)) {
      return local_error(protocol::error_code::bad_json, "data is not a valid JSON value");
    }
    std::string headers;
    if (extra.headers != nullptr) {
      if (auto failure = encode_headers(*extra.headers, headers)) return failure;
    }

    std::string* target = nullptr;
    std::size_t limit = 0;
    if (live_) {
      target = &out_;
      limit = options_.max_outbound_bytes;
      if (out_.size() + writing_.size() >= limit) return client_error(errc::outbound_full);
    } else if (handshaking()) {
      target = &reconnect_buffer_;
      limit = options_.reconnect_buffer_bytes;
    } else {
      return not_live_error();
    }
    const std::size_t start = target->size();
    protocol::pub_message pub{topic, data, extra.reply, headers};
    protocol::encode_pub(*target, pub, id != 0 ? id_text(id) : std::string{});
    const std::size_t frame_size = target->size() - start;
    const std::uint64_t max_frame =
        got_info_ || info_.max_frame != 0 ? info_.max_frame : protocol::default_max_frame;
    if (frame_size - protocol::frame_prefix_size > max_frame) {
      target->resize(start);
      return local_error(protocol::error_code::frame_too_large,
                         "the frame would be " +
                             std::to_string(frame_size - protocol::frame_prefix_size) +
                             " bytes; the server accepts " + std::to_string(max_frame));
    }
    if (!live_ && target->size() > limit) {
      target->resize(start);
      return client_error(
          errc::reconnect_buffer_full,
          "disconnected, and " + std::to_string(limit) + " bytes are already buffered");
    }
    if (live_) start_write();
    return {};
  }

  static error encode_headers(const header_list& list, std::string& out) {
    std::unordered_set<std::string_view> seen;
    out = "{";
    for (const auto& [name, value] : list) {
      if (name.empty())
        return local_error(protocol::error_code::bad_request, "a header name is empty");
      if (!seen.insert(name).second) {
        return local_error(protocol::error_code::bad_request, "header '" + name + "' is repeated");
      }
      if (out.size() > 1) out += ',';
      protocol::json::append_string(out, name);
      out += ':';
      protocol::json::append_string(out, value);
    }
    out += '}';
    return {};
  }

  error check_subscription(std::string_view pattern, const message_handler& handler,
                           const subscribe_options& extra) const {
    if (!protocol::is_valid_pattern(pattern)) {
      return local_error(protocol::error_code::invalid_topic,
                         "not a valid pattern: '" + std::string(pattern) + "'");
    }
    if (!extra.queue.empty() && !protocol::is_valid_queue_name(extra.queue)) {
      return local_error(protocol::error_code::bad_request,
                         "not a valid queue name: '" + std::string(extra.queue) + "'");
    }
    if (!handler) return client_error(errc::invalid_argument, "the message handler is empty");
    if (extra.max > protocol::max_safe_integer) {
      return local_error(protocol::error_code::bad_request, "max is above 2^53-1");
    }
    return {};
  }

  void send_subscription(std::uint64_t sid, subscription_entry& entry) {
    std::string id;
    if (entry.confirm) {
      const std::int64_t ack_id = next_id_++;
      id = id_text(ack_id);
      acks_.emplace(ack_id, pending_ack{std::move(entry.confirm), nullptr});
      entry.confirm = {};
    }
    protocol::encode_sub(out_, protocol::sub_message{sid, entry.pattern, entry.queue}, id);
    if (entry.max != 0) {
      protocol::encode_unsub(out_, protocol::unsub_message{sid, entry.max - entry.delivered});
    }
  }

  void ensure_inbox() {
    if (inbox_sid_ != 0) return;
    inbox_sid_ = next_sid_++;
    auto& entry = subscriptions_[inbox_sid_];
    entry.pattern = requests_.inbox_pattern();
    if (live_) {
      send_subscription(inbox_sid_, entry);
      start_write();
    }
  }

  void start_write() {
    if (write_in_flight_ || out_.empty() || !live_) return;
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

  void arm_request_timer() {
    const auto next = requests_.next_deadline();
    if (!next || (request_timer_armed_ && request_timer_deadline_ <= *next)) return;
    request_timer_armed_ = true;
    request_timer_deadline_ = *next;
    request_timer_.expires_at(*next);
    request_timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
      auto self = weak.lock();
      if (!self || ec == asio::error::operation_aborted) {
        // Cancelled by an earlier deadline (which re-armed it) or by close.
        return;
      }
      self->request_timer_armed_ = false;
      for (auto& pending :
           self->requests_.take_expired(request_table<request_completion>::clock::now())) {
        pending(client_error(errc::timeout, "no reply in time"), {});
      }
      self->arm_request_timer();
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
  asio::steady_timer request_timer_;
  asio::steady_timer drain_timer_;
  reconnect_policy policy_;

  connection_state state_ = connection_state::idle;
  std::uint64_t generation_ = 0;
  bool live_ = false;  // a socket that has sent info and takes our frames
  bool got_info_ = false;
  server_info info_;
  status_completion connect_done_;
  std::int64_t connect_id_ = 0;
  error closing_error_;    // the closing `err` the server sent, if any
  error_code last_error_;  // why the last connection or attempt ended
  std::uint32_t pings_out_ = 0;

  std::vector<char> read_buffer_;
  protocol::frame_decoder decoder_;
  protocol::server_parser parser_;
  protocol::server_frame frame_;

  std::string out_;      // frames waiting for the current write to finish
  std::string writing_;  // frames being written
  bool write_in_flight_ = false;
  std::string reconnect_buffer_;  // whole pub frames made while disconnected
  std::vector<status_completion> writable_waiters_;

  std::int64_t next_id_ = 1;
  std::unordered_map<std::int64_t, pending_ack> acks_;           // frames sent on this socket
  std::unordered_map<std::int64_t, pending_ack> buffered_acks_;  // frames in reconnect_buffer_

  std::unordered_map<std::uint64_t, subscription_entry> subscriptions_;
  std::uint64_t next_sid_ = 1;
  std::uint64_t inbox_sid_ = 0;
  request_table<request_completion> requests_;
  bool request_timer_armed_ = false;
  request_table<request_completion>::clock::time_point request_timer_deadline_{};

  status_completion drain_done_;
  bool drain_pong_seen_ = false;
  connection_statistics stats_;
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
  if (auto owner = owner_.lock()) {
    const auto executor = owner->executor();
    asio::dispatch(executor, [owner = std::move(owner), sid] { owner->unsubscribe(sid); });
  }
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
