// The client library against an in-process broker over loopback: pub/sub, queue groups,
// request/reply, no_responders, timeouts, flush, drain, errors, reconnection, and the
// blocking facade. Asynchronous tests run the io_context on the test thread until a
// condition holds, always with a deadline; nothing waits on a sleep.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "raw_client.hpp"
#include "test_broker.hpp"
#include "tidings/client.hpp"
#include "tidings/protocol/encoder.hpp"
#include "tidings/protocol/frame_decoder.hpp"

namespace tidings::test {
namespace {

using namespace std::chrono_literals;
using client::connection;
using client::errc;
using client::error_code;
using client::message_view;

constexpr auto deadline = 10s;

// Runs handlers until `done()` holds; false if the deadline passed first.
bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit = deadline) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(20ms);
  }
  return true;
}

client::options options_for(std::uint16_t port) {
  client::options settings;
  settings.port = port;
  settings.connect_timeout = 5s;
  return settings;
}

// Connects and waits for the outcome.
error_code connect(asio::io_context& io, connection& conn) {
  std::optional<error_code> result;
  conn.async_connect([&](error_code ec) { result = ec; });
  EXPECT_TRUE(run_until(io, [&] { return result.has_value(); }));
  return result.value_or(make_error_code(errc::timeout));
}

client::subscription subscribe(asio::io_context& io, connection& conn, std::string_view pattern,
                               client::message_handler handler,
                               client::subscribe_options extra = {}) {
  std::optional<error_code> result;
  client::subscription handle;
  conn.async_subscribe(pattern, std::move(handler), extra,
                       [&](error_code ec, client::subscription sub) {
                         result = ec;
                         handle = std::move(sub);
                       });
  EXPECT_TRUE(run_until(io, [&] { return result.has_value(); }));
  EXPECT_FALSE(result.value_or(make_error_code(errc::timeout))) << result->message();
  return handle;
}

error_code flush(asio::io_context& io, connection& conn) {
  std::optional<error_code> result;
  conn.async_flush(5s, [&](error_code ec) { result = ec; });
  EXPECT_TRUE(run_until(io, [&] { return result.has_value(); }));
  return result.value_or(make_error_code(errc::timeout));
}

struct collected {
  std::vector<client::message> messages;
  client::message_handler handler() {
    return [this](const message_view& view) { messages.emplace_back(view); };
  }
};

TEST(Client, PublishSubscribeCarriesDataReplyAndHeadersVerbatim) {
  test_broker broker;
  asio::io_context io;
  connection subscriber(io.get_executor(), options_for(broker.port()));
  connection publisher(io.get_executor(), options_for(broker.port()));
  ASSERT_FALSE(connect(io, subscriber));
  ASSERT_FALSE(connect(io, publisher));
  EXPECT_EQ(subscriber.state(), client::connection_state::connected);
  EXPECT_EQ(subscriber.info().server, "tidingsd");
  EXPECT_NE(subscriber.info().client_id, publisher.info().client_id);

  collected got;
  auto sub = subscribe(io, subscriber, "orders.*", got.handler());
  const client::header_list headers{{"trace", "abc"}, {"kind", "new \"one\""}};
  client::publish_options extra;
  extra.reply = "orders.replies";
  extra.headers = &headers;
  EXPECT_FALSE(publisher.publish("orders.created", R"({"order":42, "total":9.50})", extra));
  EXPECT_FALSE(publisher.publish("orders.deleted", "null"));
  EXPECT_FALSE(publisher.publish("other.topic", "1"));
  ASSERT_FALSE(flush(io, publisher));
  ASSERT_TRUE(run_until(io, [&] { return got.messages.size() == 2; }));
  EXPECT_EQ(got.messages[0].topic, "orders.created");
  EXPECT_EQ(got.messages[0].data, R"({"order":42, "total":9.50})");
  EXPECT_EQ(got.messages[0].reply, "orders.replies");
  EXPECT_EQ(got.messages[0].headers, R"({"trace":"abc","kind":"new \"one\""})");
  EXPECT_EQ(got.messages[1].topic, "orders.deleted");
  EXPECT_EQ(got.messages[1].data, "null");
  EXPECT_TRUE(got.messages[1].reply.empty());
  EXPECT_TRUE(got.messages[1].headers.empty());
  // Nothing else is on its way: a flush of the subscriber proves the order of arrival.
  ASSERT_FALSE(flush(io, subscriber));
  EXPECT_EQ(got.messages.size(), 2U);
  EXPECT_EQ(publisher.statistics().published, 3U);
  EXPECT_EQ(subscriber.statistics().delivered, 2U);
}

TEST(Client, CoroutinesUseTheSameOperations) {
  test_broker broker;
  asio::io_context io;
  connection conn(io.get_executor(), options_for(broker.port()));
  std::vector<std::string> seen;
  std::string reply_data;
  error_code no_responders;
  bool finished = false;

  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await conn.async_connect(asio::use_awaitable);
        auto sub = co_await conn.async_subscribe(
            "svc.echo",
            [&](const message_view& request) {
              seen.emplace_back(request.data);
              (void)conn.publish(request.reply, request.data);
            },
            {}, asio::use_awaitable);
        const auto reply =
            co_await conn.async_request("svc.echo", R"("ping")", 5s, asio::use_awaitable);
        reply_data = reply.data;
        error_code ec;
        co_await conn.async_request("svc.nobody", "1", 5s,
                                    asio::redirect_error(asio::use_awaitable, ec));
        no_responders = ec;
        co_await conn.async_flush(5s, asio::use_awaitable);
        co_await conn.async_drain(5s, asio::use_awaitable);
        finished = true;
      },
      [](std::exception_ptr failure) {
        if (failure) std::rethrow_exception(failure);
      });
  ASSERT_TRUE(run_until(io, [&] { return finished; }));
  EXPECT_EQ(seen, std::vector<std::string>{R"("ping")"});
  EXPECT_EQ(reply_data, R"("ping")");
  EXPECT_EQ(no_responders, client::make_error_code(protocol::error_code::no_responders));
  EXPECT_EQ(conn.state(), client::connection_state::closed);
}

TEST(Client, QueueGroupDeliversEachMessageToExactlyOneMember) {
  test_broker broker;
  asio::io_context io;
  constexpr int workers = 3;
  constexpr int jobs = 300;
  std::vector<std::unique_ptr<connection>> members;
  std::vector<client::subscription> subs;
  std::map<std::string, int> times_done;
  std::vector<int> per_worker(workers, 0);
  for (int i = 0; i < workers; ++i) {
    members.push_back(std::make_unique<connection>(io.get_executor(), options_for(broker.port())));
    ASSERT_FALSE(connect(io, *members.back()));
    client::subscribe_options extra;
    extra.queue = "workers";
    subs.push_back(subscribe(
        io, *members.back(), "jobs.*",
        [&, i](const message_view& job) {
          ++times_done[std::string(job.data)];
          ++per_worker[static_cast<std::size_t>(i)];
        },
        extra));
  }
  connection producer(io.get_executor(), options_for(broker.port()));
  ASSERT_FALSE(connect(io, producer));
  for (int job = 0; job < jobs; ++job)
    ASSERT_FALSE(producer.publish("jobs.resize", std::to_string(job)));
  ASSERT_FALSE(flush(io, producer));
  ASSERT_TRUE(run_until(io, [&] { return times_done.size() == jobs; }));
  for (auto& member : members)
    ASSERT_FALSE(flush(io, *member));
  for (const auto& [job, count] : times_done)
    EXPECT_EQ(count, 1) << job;
  for (int i = 0; i < workers; ++i)
    EXPECT_GT(per_worker[static_cast<std::size_t>(i)], 0) << i;
}

TEST(Client, RequestFailsAtOnceWithoutRespondersAndTimesOutWithASilentOne) {
  test_broker broker;
  asio::io_context io;
  connection conn(io.get_executor(), options_for(broker.port()));
  ASSERT_FALSE(connect(io, conn));

  std::optional<error_code> result;
  const auto started = std::chrono::steady_clock::now();
  conn.async_request("svc.none", "1", 30s, [&](error_code ec, client::message) { result = ec; });
  ASSERT_TRUE(run_until(io, [&] { return result.has_value(); }));
  EXPECT_EQ(*result, client::make_error_code(protocol::error_code::no_responders));
  // Well before the 30 s timeout: the server said so.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);

  collected silent;
  auto sub = subscribe(io, conn, "svc.silent", silent.handler());
  result.reset();
  conn.async_request("svc.silent", "1", 200ms,
                     [&](error_code ec, client::message) { result = ec; });
  ASSERT_TRUE(run_until(io, [&] { return result.has_value(); }));
  EXPECT_EQ(*result, make_error_code(errc::timeout));
  EXPECT_EQ(silent.messages.size(), 1U);
  // A late reply to the expired request is ignored, and the next request still works.
  ASSERT_FALSE(conn.publish(silent.messages[0].reply, "\"late\""));
  sub.unsubscribe();
  auto echo = subscribe(io, conn, "svc.echo", [&](const message_view& request) {
    (void)conn.publish(request.reply, request.data);
  });
  std::optional<std::string> reply;
  conn.async_request("svc.echo", "[1,2]", 5s, [&](error_code ec, client::message answer) {
    EXPECT_FALSE(ec);
    reply = answer.data;
  });
  ASSERT_TRUE(run_until(io, [&] { return reply.has_value(); }));
  EXPECT_EQ(*reply, "[1,2]");
}

TEST(Client, ManyConcurrentRequestsEachGetTheirOwnReply) {
  test_broker broker;
  asio::io_context io;
  connection responder(io.get_executor(), options_for(broker.port()));
  connection requester(io.get_executor(), options_for(broker.port()));
  ASSERT_FALSE(connect(io, responder));
  ASSERT_FALSE(connect(io, requester));
  auto sub = subscribe(io, responder, "math.double", [&](const message_view& request) {
    (void)responder.publish(request.reply,
                            std::to_string(2 * std::stoi(std::string(request.data))));
  });
  constexpr int count = 200;
  std::map<int, std::string> replies;
  for (int i = 0; i < count; ++i) {
    requester.async_request("math.double", std::to_string(i), 5s,
                            [&, i](error_code ec, client::message reply) {
                              EXPECT_FALSE(ec) << ec.message();
                              replies[i] = reply.data;
                            });
  }
  ASSERT_TRUE(run_until(io, [&] { return replies.size() == count; }));
  for (int i = 0; i < count; ++i)
    EXPECT_EQ(replies[i], std::to_string(2 * i));
}

TEST(Client, ConfirmedOperationsReportTheServersAnswer) {
  auto settings = test_broker::default_settings();
  settings.max_subscriptions = 1;
  test_broker broker(settings);
  asio::io_context io;
  std::vector<client::error> errors;
  auto extra_options = options_for(broker.port());
  extra_options.on_error = [&](const client::error& failure) { errors.push_back(failure); };
  connection conn(io.get_executor(), extra_options);
  ASSERT_FALSE(connect(io, conn));

  std::optional<error_code> result;
  conn.async_publish("a.b", "1", {}, [&](error_code ec) { result = ec; });
  ASSERT_TRUE(run_until(io, [&] { return result.has_value(); }));
  EXPECT_FALSE(*result);

  collected got;
  auto first = subscribe(io, conn, "a.>", got.handler());
  std::optional<error_code> refused;
  client::subscription second;
  conn.async_subscribe("b.>", got.handler(), {}, [&](error_code ec, client::subscription sub) {
    refused = ec;
    second = std::move(sub);
  });
  ASSERT_TRUE(run_until(io, [&] { return refused.has_value(); }));
  EXPECT_EQ(*refused, client::make_error_code(protocol::error_code::too_many_subscriptions));
  EXPECT_FALSE(second);

  // Without an id, the same refusal goes to the error callback.
  auto unconfirmed = conn.subscribe("c.>", got.handler());
  ASSERT_FALSE(flush(io, conn));
  ASSERT_TRUE(run_until(io, [&] { return !errors.empty(); }));
  EXPECT_EQ(errors[0].code, client::make_error_code(protocol::error_code::too_many_subscriptions));
  EXPECT_FALSE(errors[0].message.empty());
}

TEST(Client, LocalChecksRefuseWhatTheServerWouldAndKeepTheConnection) {
  test_broker broker;
  asio::io_context io;
  connection conn(io.get_executor(), options_for(broker.port()));
  ASSERT_FALSE(connect(io, conn));
  using protocol::error_code;
  EXPECT_EQ(conn.publish("a..b", "1"), client::make_error_code(error_code::invalid_topic));
  EXPECT_EQ(conn.publish("a.*", "1"), client::make_error_code(error_code::invalid_topic));
  EXPECT_EQ(conn.publish("$SYS.x", "1"), client::make_error_code(error_code::permission_denied));
  EXPECT_EQ(conn.publish("a", "{bad"), client::make_error_code(error_code::bad_json));
  EXPECT_EQ(conn.publish("a", ""), client::make_error_code(error_code::bad_json));
  client::publish_options bad_reply;
  bad_reply.reply = "r.>";
  EXPECT_EQ(conn.publish("a", "1", bad_reply), client::make_error_code(error_code::invalid_topic));
  const client::header_list repeated{{"k", "1"}, {"k", "2"}};
  client::publish_options bad_headers;
  bad_headers.headers = &repeated;
  EXPECT_EQ(conn.publish("a", "1", bad_headers), client::make_error_code(error_code::bad_request));
  // A frame above max_frame would cost the connection: refused here instead.
  const std::string huge = "\"" + std::string(conn.info().max_frame, 'x') + "\"";
  EXPECT_EQ(conn.publish("a", huge), client::make_error_code(error_code::frame_too_large));
  EXPECT_THROW(conn.subscribe("a.>.b", [](const message_view&) {}), client::exception);
  client::subscribe_options bad_queue;
  bad_queue.queue = "has space";
  EXPECT_THROW(conn.subscribe(
                   "a", [](const message_view&) {}, bad_queue),
               client::exception);

  EXPECT_FALSE(flush(io, conn));
  EXPECT_EQ(conn.state(), client::connection_state::connected);
}

TEST(Client, AutoUnsubscribeAfterMaxAndHandleDestructionStopDeliveries) {
  test_broker broker;
  asio::io_context io;
  connection conn(io.get_executor(), options_for(broker.port()));
  ASSERT_FALSE(connect(io, conn));
  collected limited;
  collected scoped;
  client::subscribe_options three;
  three.max = 3;
  auto limited_sub = subscribe(io, conn, "tick", limited.handler(), three);
  {
    auto scoped_sub = subscribe(io, conn, "tick", scoped.handler());
    ASSERT_FALSE(conn.publish("tick", "0"));
    ASSERT_FALSE(flush(io, conn));
    ASSERT_TRUE(run_until(io, [&] { return scoped.messages.size() == 1; }));
  }
  for (int i = 1; i < 10; ++i)
    ASSERT_FALSE(conn.publish("tick", std::to_string(i)));
  ASSERT_FALSE(flush(io, conn));
  // The flush's pong comes after every msg the server sent before it.
  EXPECT_EQ(limited.messages.size(), 3U);
  EXPECT_EQ(scoped.messages.size(), 1U);
}

TEST(Client, DrainDeliversWhatWasInFlightThenCloses) {
  test_broker broker;
  asio::io_context io;
  bool closed_callback = false;
  auto settings = options_for(broker.port());
  settings.on_closed = [&](const error_code& ec) {
    EXPECT_FALSE(ec);
    closed_callback = true;
  };
  connection subscriber(io.get_executor(), settings);
  connection publisher(io.get_executor(), options_for(broker.port()));
  ASSERT_FALSE(connect(io, subscriber));
  ASSERT_FALSE(connect(io, publisher));
  collected got;
  auto sub = subscribe(io, subscriber, "events", got.handler());
  constexpr int count = 1000;
  for (int i = 0; i < count; ++i)
    ASSERT_FALSE(publisher.publish("events", std::to_string(i)));
  ASSERT_FALSE(flush(io, publisher));
  // Every message is now queued for the subscriber at the server: drain must hand all
  // of them to the handler before it completes.
  std::optional<error_code> drained;
  subscriber.async_drain(5s, [&](error_code ec) { drained = ec; });
  ASSERT_TRUE(run_until(io, [&] { return drained.has_value() && closed_callback; }));
  EXPECT_FALSE(*drained);
  EXPECT_EQ(got.messages.size(), static_cast<std::size_t>(count));
  EXPECT_EQ(subscriber.state(), client::connection_state::closed);
  EXPECT_EQ(subscriber.publish("events", "1"), make_error_code(errc::closed));
  std::optional<error_code> after;
  subscriber.async_flush(1s, [&](error_code ec) { after = ec; });
  ASSERT_TRUE(run_until(io, [&] { return after.has_value(); }));
  EXPECT_EQ(*after, make_error_code(errc::closed));
}

TEST(Client, CloseFailsPendingOperations) {
  test_broker broker;
  asio::io_context io;
  connection conn(io.get_executor(), options_for(broker.port()));
  ASSERT_FALSE(connect(io, conn));
  collected silent;
  auto sub = subscribe(io, conn, "svc.silent", silent.handler());
  std::optional<error_code> request_result;
  conn.async_request("svc.silent", "1", 30s,
                     [&](error_code ec, client::message) { request_result = ec; });
  ASSERT_TRUE(run_until(io, [&] { return silent.messages.size() == 1; }));
  conn.close();
  ASSERT_TRUE(run_until(io, [&] { return request_result.has_value(); }));
  EXPECT_EQ(*request_result, make_error_code(errc::closed));
}

TEST(Client, FirstConnectionFailureIsReportedNotRetried) {
  std::uint16_t closed_port = 0;
  {
    test_broker gone;
    closed_port = gone.port();
  }
  asio::io_context io;
  connection conn(io.get_executor(), options_for(closed_port));
  const auto ec = connect(io, conn);
  EXPECT_EQ(ec, asio::error::connection_refused);
  EXPECT_EQ(conn.state(), client::connection_state::idle);
  EXPECT_EQ(conn.publish("a", "1"), make_error_code(errc::not_connected));
}

// Stops the broker and starts a new one on the same port: the client notices, buffers
// what is published meanwhile, reconnects, restores its subscriptions, and delivers the
// buffer; a publish beyond the buffer's limit fails.
TEST(Client, ReconnectsRestoresSubscriptionsAndDeliversBufferedPublishes) {
  auto broker = std::make_unique<test_broker>();
  const auto port = broker->port();
  asio::io_context io;
  int disconnects = 0;
  int reconnects = 0;
  auto settings = options_for(port);
  settings.reconnect.initial_delay = 10ms;
  settings.reconnect.max_delay = 100ms;
  settings.reconnect_buffer_bytes = 4096;
  settings.on_disconnected = [&](const error_code&) { ++disconnects; };
  settings.on_reconnected = [&] { ++reconnects; };
  connection conn(io.get_executor(), settings);
  ASSERT_FALSE(connect(io, conn));
  collected got;
  collected queued;
  auto sub = subscribe(io, conn, "data.>", got.handler());
  client::subscribe_options group;
  group.queue = "q";
  auto queue_sub = subscribe(io, conn, "work", queued.handler(), group);
  ASSERT_FALSE(conn.publish("data.before", "0"));
  ASSERT_TRUE(run_until(io, [&] { return got.messages.size() == 1; }));

  broker->stop();
  ASSERT_TRUE(run_until(io, [&] { return disconnects == 1; }));
  EXPECT_EQ(conn.state(), client::connection_state::reconnecting);
  broker.reset();

  // Buffered while disconnected, up to 4096 bytes of frames.
  int buffered = 0;
  error_code overflow;
  for (int i = 0; i < 1000 && !overflow; ++i) {
    overflow = conn.publish("data.during", std::to_string(i));
    if (!overflow) ++buffered;
  }
  EXPECT_EQ(overflow, make_error_code(errc::reconnect_buffer_full));
  EXPECT_GT(buffered, 50);
  EXPECT_LE(conn.pending_bytes(), 4096U);
  std::optional<error_code> flush_while_down;
  conn.async_flush(1s, [&](error_code ec) { flush_while_down = ec; });
  ASSERT_TRUE(run_until(io, [&] { return flush_while_down.has_value(); }));
  EXPECT_EQ(*flush_while_down, make_error_code(errc::disconnected));

  broker = std::make_unique<test_broker>(test_broker::default_settings(), port);
  ASSERT_TRUE(run_until(io, [&] { return reconnects == 1; }));
  EXPECT_EQ(conn.state(), client::connection_state::connected);
  ASSERT_TRUE(
      run_until(io, [&] { return got.messages.size() == static_cast<std::size_t>(1 + buffered); }));
  for (int i = 0; i < buffered; ++i) {
    EXPECT_EQ(got.messages[static_cast<std::size_t>(1 + i)].data, std::to_string(i));
  }
  // The queue subscription came back too.
  ASSERT_FALSE(conn.publish("work", "\"job\""));
  ASSERT_TRUE(run_until(io, [&] { return queued.messages.size() == 1; }));
  EXPECT_EQ(conn.statistics().reconnects, 1U);
}

TEST(Client, GivesUpAfterMaxAttemptsAndReportsClosed) {
  auto broker = std::make_unique<test_broker>();
  asio::io_context io;
  std::optional<error_code> closed_with;
  auto settings = options_for(broker->port());
  settings.reconnect.initial_delay = 1ms;
  settings.reconnect.max_delay = 5ms;
  settings.reconnect.max_attempts = 3;
  settings.on_closed = [&](const error_code& ec) { closed_with = ec; };
  connection conn(io.get_executor(), settings);
  ASSERT_FALSE(connect(io, conn));
  broker.reset();
  ASSERT_TRUE(run_until(io, [&] { return closed_with.has_value(); }));
  EXPECT_EQ(*closed_with, asio::error::connection_refused);
  EXPECT_EQ(conn.state(), client::connection_state::closed);
  EXPECT_EQ(conn.publish("a", "1"), make_error_code(errc::closed));
}

// A hand-driven server, for what tidingsd never does: ignoring pings, pinging on demand.
class scripted_server {
 public:
  explicit scripted_server(asio::io_context& io)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  // Accepts one client, greets it, and acknowledges its `connect` (id 1).
  void accept_and_greet() {
    acceptor_.async_accept([this](error_code ec, tcp::socket peer) {
      if (ec) return;
      socket_.emplace(std::move(peer));
      std::string frames;
      protocol::info_message info;
      info.server = "scripted";
      info.version = "0";
      info.max_frame = 1 << 20;
      protocol::encode_info(frames, info);
      send(frames);
      read_frames();
    });
  }

  void send(const std::string& frames) { asio::write(*socket_, asio::buffer(frames)); }

  // Collects the client's frames as they arrive and answers `connect` with `ok`.
  void read_frames() {
    socket_->async_read_some(asio::buffer(buffer_), [this](error_code ec, std::size_t size) {
      if (ec) {
        eof = true;
        return;
      }
      std::string_view input(buffer_.data(), size);
      for (;;) {
        const auto result = decoder_.next(input);
        input.remove_prefix(result.consumed);
        if (result.state != protocol::frame_decoder::status::frame) break;
        received.emplace_back(result.body);
        if (result.body.find("\"connect\"") != std::string_view::npos) {
          std::string ok;
          protocol::encode_ok(ok, "1");
          send(ok);
        } else if (msg_instead_of_pong != 0 && result.body == R"({"op":"ping"})") {
          // Like tidingsd under `drop` with a backlog: busy sending, the pong far behind.
          std::string frames;
          protocol::msg_message msg;
          msg.sid = msg_instead_of_pong;
          msg.topic = "feed";
          msg.data = "1";
          protocol::encode_msg(frames, msg);
          send(frames);
        }
      }
      read_frames();
    });
  }

  std::vector<std::string> received;
  bool eof = false;
  // Non-zero: each client ping is answered by a `msg` to this sid instead of a pong.
  std::uint64_t msg_instead_of_pong = 0;

 private:
  tcp::acceptor acceptor_;
  std::optional<tcp::socket> socket_;
  std::array<char, 4096> buffer_{};
  protocol::frame_decoder decoder_;
};

TEST(Client, AnswersServerPingsAndDetectsAServerThatStoppedAnswering) {
  asio::io_context io;
  scripted_server server(io);
  std::optional<error_code> lost;
  auto settings = options_for(server.port());
  settings.ping_interval = 50ms;
  settings.max_pings_out = 2;
  settings.reconnect.enabled = false;
  settings.on_disconnected = [&](const error_code& ec) { lost = ec; };
  std::optional<error_code> closed_with;
  settings.on_closed = [&](const error_code& ec) { closed_with = ec; };
  connection conn(io.get_executor(), settings);
  std::optional<error_code> connected;
  conn.async_connect([&](error_code ec) { connected = ec; });
  server.accept_and_greet();
  ASSERT_TRUE(run_until(io, [&] { return connected.has_value(); }));
  ASSERT_FALSE(*connected);

  std::string ping;
  protocol::encode_ping(ping);
  server.send(ping);
  ASSERT_TRUE(run_until(io, [&] {
    for (const auto& frame : server.received) {
      if (frame == R"({"op":"pong"})") return true;
    }
    return false;
  }));
  // The server never answers the client's own pings: after two unanswered ones, the
  // third tick gives up on it.
  ASSERT_TRUE(run_until(io, [&] { return closed_with.has_value(); }));
  EXPECT_EQ(*closed_with, make_error_code(errc::server_unresponsive));
  int pings = 0;
  for (const auto& frame : server.received)
    pings += frame == R"({"op":"ping"})" ? 1 : 0;
  EXPECT_EQ(pings, 2);
}

int count_frames(const std::vector<std::string>& frames, std::string_view wanted) {
  int count = 0;
  for (const auto& frame : frames)
    count += frame == wanted ? 1 : 0;
  return count;
}

TEST(Client, CountsAnyFrameFromTheServerAsProofOfLife) {
  asio::io_context io;
  scripted_server server(io);
  auto settings = options_for(server.port());
  settings.ping_interval = 50ms;
  settings.max_pings_out = 2;
  settings.reconnect.enabled = false;
  std::optional<error_code> closed_with;
  settings.on_closed = [&](const error_code& ec) { closed_with = ec; };
  connection conn(io.get_executor(), settings);
  std::optional<error_code> connected;
  conn.async_connect([&](error_code ec) { connected = ec; });
  server.accept_and_greet();
  ASSERT_TRUE(run_until(io, [&] { return connected.has_value(); }));
  ASSERT_FALSE(*connected);
  int delivered = 0;
  auto sub = conn.subscribe("feed", [&](const message_view&) { ++delivered; });
  server.msg_instead_of_pong = sub.sid();

  // The server never sends a pong but answers every ping with a message. Three times
  // max_pings_out pings: the code that only counted pongs gave up after the second.
  constexpr int pings_wanted = 6;
  ASSERT_TRUE(run_until(io, [&] {
    return closed_with.has_value() ||
           (count_frames(server.received, R"({"op":"ping"})") >= pings_wanted &&
            delivered >= pings_wanted);
  }));
  EXPECT_FALSE(closed_with.has_value()) << closed_with->message();
  EXPECT_EQ(conn.state(), client::connection_state::connected);

  // Once the messages stop as well, the server is declared lost as before.
  server.msg_instead_of_pong = 0;
  ASSERT_TRUE(run_until(io, [&] { return closed_with.has_value(); }));
  EXPECT_EQ(*closed_with, make_error_code(errc::server_unresponsive));
}

TEST(BlockingClient, PublishesSubscribesRequestsAndThrowsWithTheServersMessage) {
  auto settings = test_broker::default_settings();
  settings.max_subscriptions = 2;
  test_broker broker(settings);
  client::blocking_client conn(options_for(broker.port()));
  EXPECT_EQ(conn.state(), client::connection_state::connected);
  EXPECT_EQ(conn.info().server, "tidingsd");

  std::mutex lock;
  std::condition_variable arrived;
  std::vector<std::string> data;
  std::thread::id handler_thread;
  auto sub = conn.subscribe("svc.double", [&](const message_view& request) {
    {
      std::lock_guard guard(lock);
      data.emplace_back(request.data);
      handler_thread = std::this_thread::get_id();
    }
    arrived.notify_all();
    // A handler may publish (the reply) but not wait for the server.
    conn.publish(request.reply, std::to_string(2 * std::stoi(std::string(request.data))));
    EXPECT_THROW(conn.flush(), std::logic_error);
  });
  EXPECT_EQ(conn.request("svc.double", "21", 5s).data, "42");
  {
    std::unique_lock guard(lock);
    ASSERT_TRUE(arrived.wait_for(guard, deadline, [&] { return !data.empty(); }));
    EXPECT_NE(handler_thread, std::this_thread::get_id());
  }
  conn.publish_confirmed("other", "true");
  conn.flush();

  // The inbox is the second subscription: a third is refused by the server.
  try {
    conn.subscribe("more", [](const message_view&) {});
    FAIL() << "expected too_many_subscriptions";
  } catch (const client::exception& failure) {
    EXPECT_EQ(failure.code(),
              client::make_error_code(protocol::error_code::too_many_subscriptions));
    EXPECT_FALSE(failure.server_message().empty());
  }
  try {
    conn.request("svc.none", "1", 5s);
    FAIL() << "expected no_responders";
  } catch (const client::exception& failure) {
    EXPECT_EQ(failure.code(), client::make_error_code(protocol::error_code::no_responders));
  }
  EXPECT_THROW(conn.publish("bad..topic", "1"), client::exception);
  conn.drain();
  EXPECT_EQ(conn.state(), client::connection_state::closed);
}

TEST(BlockingClient, ConstructorThrowsWhenTheServerIsUnreachable) {
  std::uint16_t closed_port = 0;
  {
    test_broker gone;
    closed_port = gone.port();
  }
  EXPECT_THROW(client::blocking_client{options_for(closed_port)}, client::exception);
}

TEST(BlockingClient, PublishWaitsForRoomInsteadOfFailing) {
  test_broker broker;
  auto settings = options_for(broker.port());
  settings.max_outbound_bytes = 64 * 1024;
  client::blocking_client publisher(settings);
  client::blocking_client subscriber(options_for(broker.port()));
  std::atomic<int> received{0};
  auto sub = subscriber.subscribe("bulk", [&](const message_view&) { ++received; });
  const std::string payload = "\"" + std::string(1000, 'x') + "\"";
  constexpr int count = 2000;  // 2 MB through a 64 KiB window
  for (int i = 0; i < count; ++i)
    publisher.publish("bulk", payload);
  publisher.flush();
  subscriber.flush();
  EXPECT_EQ(received.load(), count);
}

// --- issue 9: the client library's broken promises ------------------------------------

// A reconnect attempt that the server refuses after `info` (here: at its connection
// limit, so `info` then `err too_many_connections`) takes nothing with it: the buffered
// publishes, the confirmed publish and the subscription made while disconnected all go
// out on the connection that is finally accepted, and their confirmations complete.
TEST(Client, ReconnectRefusedAfterInfoKeepsBufferedPublishesAndConfirmations) {
  auto broker = std::make_unique<test_broker>();
  const auto port = broker->port();
  asio::io_context io;
  int disconnects = 0;
  int reconnects = 0;
  int refusals = 0;
  auto settings = options_for(port);
  settings.reconnect.initial_delay = 5ms;
  settings.reconnect.max_delay = 20ms;
  settings.on_disconnected = [&](const error_code&) { ++disconnects; };
  settings.on_reconnected = [&] { ++reconnects; };
  settings.on_error = [&](const client::error& failure) {
    if (failure.code == client::make_error_code(protocol::error_code::too_many_connections)) {
      ++refusals;
    }
  };
  connection conn(io.get_executor(), settings);
  ASSERT_FALSE(connect(io, conn));
  collected got;
  auto sub = subscribe(io, conn, "data.>", got.handler());

  broker->stop();
  ASSERT_TRUE(run_until(io, [&] { return disconnects == 1; }));
  broker.reset();

  // Made while disconnected: buffered, and waiting for the next accepted connection.
  for (int i = 0; i < 5; ++i)
    ASSERT_FALSE(conn.publish("data.buffered", std::to_string(i)));
  std::optional<error_code> confirmed;
  conn.async_publish("data.confirmed", "\"c\"", {}, [&](error_code ec) { confirmed = ec; });
  collected late;
  std::optional<error_code> late_subscribed;
  client::subscription late_sub;
  conn.async_subscribe("late", late.handler(), {}, [&](error_code ec, client::subscription handle) {
    late_subscribed = ec;
    late_sub = std::move(handle);
  });
  const auto buffered_bytes = conn.pending_bytes();
  ASSERT_GT(buffered_bytes, 0U);

  // A broker whose only connection slot is taken: every attempt gets info, then a refusal.
  auto limited = test_broker::default_settings();
  limited.max_connections = 1;
  broker = std::make_unique<test_broker>(limited, port);
  auto blocker = std::make_unique<raw_client>(port);
  blocker->read_info();  // sent once the broker has counted it
  ASSERT_TRUE(run_until(io, [&] { return refusals >= 2; }));
  EXPECT_EQ(reconnects, 0);
  EXPECT_FALSE(confirmed.has_value());
  EXPECT_FALSE(late_subscribed.has_value());
  // Before the fix the refused attempts had swallowed the buffer.
  EXPECT_EQ(conn.pending_bytes(), buffered_bytes);

  blocker.reset();
  ASSERT_TRUE(run_until(io, [&] { return reconnects == 1; }));
  ASSERT_TRUE(run_until(io, [&] { return confirmed.has_value() && late_subscribed.has_value(); }));
  EXPECT_FALSE(*confirmed) << confirmed->message();
  EXPECT_FALSE(*late_subscribed) << late_subscribed->message();
  ASSERT_TRUE(run_until(io, [&] { return got.messages.size() == 6; }));
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(got.messages[static_cast<std::size_t>(i)].data, std::to_string(i));
  EXPECT_EQ(got.messages[5].topic, "data.confirmed");
  ASSERT_FALSE(conn.publish("late", "1"));
  ASSERT_TRUE(run_until(io, [&] { return late.messages.size() == 1; }));
}

// A request whose connection is lost fails at once with errc::disconnected instead of
// waiting for its (long) timeout.
TEST(Client, RequestsInFlightFailWithDisconnectedWhenTheConnectionDrops) {
  auto broker = std::make_unique<test_broker>();
  asio::io_context io;
  auto settings = options_for(broker->port());
  settings.reconnect.initial_delay = 1s;
  connection conn(io.get_executor(), settings);
  ASSERT_FALSE(connect(io, conn));
  int asked = 0;
  auto silent = subscribe(io, conn, "svc.silent", [&](const message_view&) { ++asked; });
  std::optional<error_code> result;
  conn.async_request("svc.silent", "1", std::chrono::minutes(5),
                     [&](error_code ec, client::message) { result = ec; });
  ASSERT_TRUE(run_until(io, [&] { return asked == 1; }));
  EXPECT_FALSE(result.has_value());
  const auto stopped_at = std::chrono::steady_clock::now();
  broker->stop();
  ASSERT_TRUE(run_until(io, [&] { return result.has_value(); }));
  EXPECT_EQ(*result, make_error_code(errc::disconnected));
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, deadline);
}

// An operation started lazily (use_awaitable runs the initiation when awaited) owns its
// arguments: the strings and headers it was given are gone by then. Under ASan the old
// code reads freed memory here.
TEST(Client, LazilyStartedOperationsOwnTheirArguments) {
  test_broker broker;
  asio::io_context io;
  connection conn(io.get_executor(), options_for(broker.port()));
  ASSERT_FALSE(connect(io, conn));
  collected got;
  const std::string topic(40, 't');
  const std::string data = "\"" + std::string(60, 'd') + "\"";
  const std::string reply(50, 'r');
  auto sub = subscribe(io, conn, topic, got.handler());
  auto responder = subscribe(io, conn, "svc.echo", [&](const message_view& request) {
    conn.publish(request.reply, request.data);
  });

  bool finished = false;
  client::message answer;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto publish = [&] {
          // Heap strings (longer than any small-string buffer), destroyed on return.
          auto owned_topic = std::make_unique<std::string>(topic);
          auto owned_data = std::make_unique<std::string>(data);
          auto owned_reply = std::make_unique<std::string>(reply);
          auto headers = std::make_unique<client::header_list>(
              client::header_list{{"h", std::string(40, 'v')}});
          client::publish_options extra;
          extra.reply = *owned_reply;
          extra.headers = headers.get();
          return conn.async_publish(*owned_topic, *owned_data, extra, asio::use_awaitable);
        }();
        co_await std::move(publish);
        auto request = [&] {
          auto owned_topic = std::make_unique<std::string>("svc.echo");
          auto owned_data = std::make_unique<std::string>(data);
          auto headers = std::make_unique<client::header_list>(
              client::header_list{{"h", std::string(40, 'w')}});
          return conn.async_request(*owned_topic, *owned_data, 5s, asio::use_awaitable,
                                    headers.get());
        }();
        answer = co_await std::move(request);
        finished = true;
      },
      asio::detached);
  ASSERT_TRUE(run_until(io, [&] { return finished && got.messages.size() == 1; }));
  EXPECT_EQ(got.messages[0].topic, topic);
  EXPECT_EQ(got.messages[0].data, data);
  EXPECT_EQ(got.messages[0].reply, reply);
  EXPECT_EQ(got.messages[0].headers, "{\"h\":\"" + std::string(40, 'v') + "\"}");
  EXPECT_EQ(answer.data, data);
}

// unsubscribe() from another thread while the handler works through a large read batch:
// once it has returned, the handler never runs again (before the fix it returned at once,
// and the handler went on with the rest of the batch).
TEST(BlockingClient, UnsubscribeFromAnotherThreadStopsTheHandlerBeforeReturning) {
  test_broker broker;
  client::blocking_client subscriber(options_for(broker.port()));
  client::blocking_client publisher(options_for(broker.port()));
  constexpr int flood = 3000;  // far more than one 64 KiB read holds
  int late_calls = 0;
  for (int round = 0; round < 3; ++round) {
    std::atomic<bool> returned{false};
    std::atomic<int> late{0};
    std::atomic<int> received{0};
    std::promise<void> reached;
    std::promise<void> open;
    auto gate = open.get_future().share();
    auto sub = subscriber.subscribe("flood", [&, gate](const message_view&) {
      if (received.fetch_add(1) == 0) {
        // Hold the client's thread until the flood is queued on its socket, so that
        // the next reads are full batches.
        reached.set_value();
        (void)gate.wait_for(deadline);
        return;
      }
      if (returned.load()) ++late;
      // A little work per message, as a real handler does.
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(5);
      while (std::chrono::steady_clock::now() < until) {
      }
    });
    publisher.publish("flood", "0");
    ASSERT_EQ(reached.get_future().wait_for(deadline), std::future_status::ready);
    for (int i = 0; i < flood; ++i)
      publisher.publish("flood", "1");
    publisher.flush();
    open.set_value();
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (received.load() < 20 && std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
    ASSERT_GE(received.load(), 20);
    sub.unsubscribe();
    returned = true;
    EXPECT_LT(received.load(), flood + 1);  // it stopped mid-flood
    // Everything the broker sent before it processed the unsub has been read and
    // dispatched once a flush round trip has completed.
    subscriber.flush();
    late_calls += late.load();
  }
  EXPECT_EQ(late_calls, 0);
}

// Destroying the blocking client from inside its own handler ends it cleanly (it used
// to join its own thread: std::terminate).
TEST(BlockingClient, CanBeDestroyedFromItsOwnHandler) {
  test_broker broker;
  auto owner = std::make_unique<client::blocking_client>(options_for(broker.port()));
  std::promise<void> destroyed;
  auto sub = owner->subscribe("self.destruct", [&](const message_view&) {
    owner.reset();
    destroyed.set_value();
  });
  sub.detach();
  client::blocking_client publisher(options_for(broker.port()));
  publisher.publish("self.destruct", "1");
  auto done = destroyed.get_future();
  ASSERT_EQ(done.wait_for(deadline), std::future_status::ready);
  EXPECT_EQ(owner, nullptr);
}

// A blocking call that times out while the client's thread is busy leaves nothing that
// refers to its stack: the request (and a confirmed publish) start after the caller has
// returned and its strings are gone; the reply then arrives to nobody. Under ASan the old
// code reads freed memory here.
TEST(BlockingClient, CallsThatTimeOutLeaveNothingReferringToTheCaller) {
  test_broker broker;
  client::blocking_client conn(options_for(broker.port()));
  client::blocking_client responder(options_for(broker.port()));
  std::atomic<int> answered{0};
  auto echo = responder.subscribe("svc.echo", [&](const message_view& request) {
    responder.publish(request.reply, request.data);
    ++answered;
  });
  std::promise<void> busy;
  std::promise<void> release;
  auto released = release.get_future().share();
  auto blocker = conn.subscribe("block", [&, released](const message_view&) {
    busy.set_value();
    // Bounded: the test releases it long before.
    (void)released.wait_for(deadline);
  });
  conn.publish("block", "1");
  ASSERT_EQ(busy.get_future().wait_for(deadline), std::future_status::ready);
  {
    auto topic = std::make_unique<std::string>("svc.echo");
    auto data = std::make_unique<std::string>("\"" + std::string(64, 'x') + "\"");
    EXPECT_THROW(conn.request(*topic, *data, 20ms), client::exception);
  }
  {
    auto topic = std::make_unique<std::string>(std::string(48, 'p'));
    auto data = std::make_unique<std::string>("\"" + std::string(64, 'y') + "\"");
    EXPECT_THROW(conn.publish_confirmed(*topic, *data, {}, 20ms), client::exception);
  }
  release.set_value();
  // The late request went out after all, and its reply arrived to nobody.
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (answered.load() < 1 && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  EXPECT_EQ(answered.load(), 1);
  conn.flush();
  EXPECT_EQ(conn.request("svc.echo", "2", 5s).data, "2");
}

}  // namespace
}  // namespace tidings::test
