// A connection's life in the broker, from outside (issue 9): the graceful drain of a
// client that keeps talking, the write deadline as "no progress", the footprint an idle
// connection returns to, the connection count across the stop, and client names in the
// log (bounded, escaped).

#include "conformance.hpp"

#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "live_heap.hpp"

namespace tidings::test {
namespace {

using namespace std::chrono_literals;

// For subscribers whose backlog must stay in the broker (see limits_test.cpp): 64 KiB
// fixes the receive buffer at its initial size and turns off its growth.
constexpr int small_receive_buffer = 64 * 1024;

// `seq` as 8 digits, so that every message of a flood has the same size.
std::string seq_text(std::size_t seq) {
  const std::string digits = std::to_string(seq);
  return std::string(digits.size() < 8 ? 8 - digits.size() : 0, '0') + digits;
}

std::string pub_body(std::string_view topic, std::size_t seq, std::size_t padding) {
  return R"({"op":"pub","topic":")" + std::string(topic) + R"(","data":")" + seq_text(seq) +
         std::string(padding, 'p') + "\"}";
}

std::size_t seq_of(const json& msg) {
  return std::stoull(msg["data"].get<std::string>().substr(0, 8));
}

// The broker's listener refuses connections: the stop has begun.
bool listener_closed(std::uint16_t port) {
  return eventually([&] {
    try {
      raw_client late(port);
      return false;
    } catch (const std::runtime_error&) {
      return true;
    }
  });
}

// ---------------------------------------------------------------------------------------
// Defect 1: the drain of a client that keeps talking.

TEST(Drain, AClientThatKeepsTalkingGetsEverythingQueuedThenShuttingDown) {
  broker::config settings = test_broker::default_settings();
  settings.drain_timeout = 60s;  // far above what the drain needs: it must end on its own
  test_broker broker(settings);

  raw_client subscriber(broker.port());
  subscriber.set_receive_buffer(small_receive_buffer);  // the backlog stays queued in the broker
  subscriber.read_info();
  subscribe(subscriber, 1, "drain.talk");
  auto publisher = open_client(broker);

  constexpr std::size_t messages = 1000;  // 8 MiB: more than the kernel buffers hold
  for (std::size_t i = 0; i < messages; ++i) {
    publisher.send_frame(pub_body("drain.talk", i, 8192));
  }
  EXPECT_TRUE(publisher.sync().empty());  // every message is queued for the subscriber

  const auto stop_started = std::chrono::steady_clock::now();
  // Joined however the test ends (a failed assertion returns early).
  std::jthread stopper([&] { broker.stop(); });
  ASSERT_TRUE(listener_closed(broker.port()));  // the drain has begun

  // Read the backlog while sending what a client library sends on its own: pings, a
  // flush, publishes. None of it may cost a single queued message.
  std::size_t received = 0;
  std::optional<json> goodbye;
  std::uint64_t next_id = 1;
  while (!goodbye) {
    const auto body = subscriber.recv_frame(30s);
    ASSERT_TRUE(body.has_value()) << "connection lost after " << received << " of " << messages
                                  << " messages";
    const json frame = json::parse(*body);
    const std::string op = frame.value("op", "");
    if (op == "err") {
      goodbye = frame;
      break;
    }
    ASSERT_EQ(op, "msg") << frame.dump().substr(0, 200);
    ASSERT_EQ(seq_of(frame), received);
    ++received;
    if (received % 10 == 0) {
      try {
        if (received % 30 == 0) {
          subscriber.send_frame(R"({"op":"pub","topic":"drain.talk.back","data":1,"id":)" +
                                std::to_string(next_id++) + "}");
        } else {
          subscriber.send_json({{"op", "ping"}, {"id", next_id++}});
        }
      } catch (const std::runtime_error& e) {
        FAIL() << "the broker reset the connection after " << received << " messages: " << e.what();
      }
    }
  }
  EXPECT_EQ(received, messages);
  EXPECT_TRUE(is_err(*goodbye, "shutting_down"));
  std::vector<std::string> rest;
  EXPECT_TRUE(subscriber.wait_closed(30s, &rest));
  EXPECT_TRUE(rest.empty());

  EXPECT_TRUE(is_err(publisher.recv(), "shutting_down"));
  EXPECT_TRUE(publisher.wait_closed(30s));

  // Both clients still hold their sockets open: the drain ended because everything was
  // delivered, not at its timeout.
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_started, 30s);
}

// ---------------------------------------------------------------------------------------
// Defect 6: the write deadline is "no progress for write_deadline".

TEST(WriteDeadline, ASteadySlowReaderStaysAndAStoppedOneIsCut) {
  broker::config settings = test_broker::default_settings();
  settings.write_deadline = 1s;
  test_broker broker(settings);

  raw_client steady(broker.port());
  steady.set_receive_buffer(small_receive_buffer);
  steady.read_info();
  subscribe(steady, 1, "slow.read");
  raw_client stopped(broker.port());
  stopped.set_receive_buffer(small_receive_buffer);
  stopped.read_info();
  subscribe(stopped, 1, "slow.read");
  auto publisher = open_client(broker);

  // 16 MiB, far below max_pending: more than the kernel buffers hold, so the writer
  // waits for the readers with a 512 KiB batch in flight.
  constexpr std::size_t messages = 256;
  constexpr std::size_t size = 64 * 1024;

  // The steady reader reads from the start (a slow build may take longer than the
  // deadline just to publish), at about 200 KB/s for 4 s: a 512 KiB batch takes 2.6 s at
  // that rate, well past the deadline, yet every read is progress. Then it reads the rest
  // at full speed.
  std::size_t received = 0;
  std::string steady_failure;
  std::jthread reader([&] {
    const auto slow_until = std::chrono::steady_clock::now() + 4s;
    while (received < messages) {
      const auto body = steady.recv_frame(30s);
      if (!body) {
        steady_failure = "the steady reader was cut after " + std::to_string(received);
        return;
      }
      const json frame = json::parse(*body);
      if (frame.value("op", "") != "msg" || seq_of(frame) != received) {
        steady_failure = "unexpected frame: " + frame.dump().substr(0, 200);
        return;
      }
      ++received;
      // Pacing a reader is what this test is about, so here a sleep is the point.
      if (std::chrono::steady_clock::now() < slow_until) std::this_thread::sleep_for(320ms);
    }
  });
  for (std::size_t i = 0; i < messages; ++i)
    publisher.send_frame(pub_body("slow.read", i, size));
  EXPECT_TRUE(publisher.sync(60s).empty());
  reader.join();
  ASSERT_TRUE(steady_failure.empty()) << steady_failure;
  EXPECT_EQ(received, messages);
  // Still connected, and nothing else came.
  EXPECT_TRUE(steady.sync(30s).empty());

  // The one that never read made no progress for longer than the deadline: cut.
  EXPECT_EQ(broker.server().stats().slow_consumers.load(), 1U);
  EXPECT_TRUE(stopped.wait_closed(20s));
}

// ---------------------------------------------------------------------------------------
// Defect 3: an idle connection returns to its small footprint.

TEST(Memory, IdleConnectionsGiveBackWhatTheirLargestFrameTook) {
  test_broker broker;
  constexpr std::size_t connections = 64;
  // Larger than the loop's 64 KiB read buffer, so the frame is split across reads and
  // copied into the connection's frame decoder.
  const std::string large = pub_body("memory.idle", 0, 300 * 1024);
  // An escaped name decodes into the parser's scratch before its length is checked.
  std::string long_name;
  for (int i = 0; i < 50'000; ++i)
    long_name += "\\n";
  const std::string connect = R"({"op":"connect","id":1,"name":")" + long_name + "\"}";

  std::vector<raw_client> clients;
  clients.reserve(connections);
  for (std::size_t i = 0; i < connections; ++i) {
    clients.push_back(open_client(broker));
    EXPECT_TRUE(clients.back().sync().empty());
  }
  const std::size_t before = live_heap_bytes();

  for (auto& client : clients) {
    client.send_frame(connect);
    client.send_frame(large);
    const auto answers = client.sync();
    ASSERT_EQ(answers.size(), 1U);
    EXPECT_TRUE(is_err(answers[0], "bad_request", json(1))) << answers[0].dump();
  }
  const std::size_t after = live_heap_bytes();

  // Each connection took over 300 KiB while its frames were processed; once idle it
  // must keep next to nothing of it. The margin covers allocator and sanitizer noise
  // (the loops' pooled write buffers, gtest), not a frame per connection.
  const std::size_t growth = after > before ? after - before : 0;
  EXPECT_LT(growth, connections * 4 * 1024 + 512 * 1024)
      << "the live heap grew by " << growth / connections << " bytes per idle connection";
}

// ---------------------------------------------------------------------------------------
// Defect 8: the connection count across the stop.

TEST(ConnectionCount, IsExactAfterConnectionsArriveDuringTheStop) {
  // A connection accepted just before the stop is greeted and drained without being
  // counted; its close must not give back a count it never took (the count wrapped
  // below zero). The window is narrow, so several stops race several connectors.
  for (int round = 0; round < 40; ++round) {
    broker::config settings = test_broker::default_settings();
    settings.drain_timeout = 2s;
    auto broker = std::make_unique<test_broker>(settings);
    const auto port = broker->port();
    std::atomic<bool> refused{false};
    std::atomic<int> opened{0};
    std::vector<std::thread> connectors;
    for (int t = 0; t < 4; ++t) {
      connectors.emplace_back([&] {
        std::vector<std::unique_ptr<raw_client>> held;
        while (!refused.load()) {
          try {
            held.push_back(std::make_unique<raw_client>(port, 2s));
            opened.fetch_add(1);
          } catch (const std::runtime_error&) {
            refused.store(true);  // the listener is closed
          }
          if (held.size() > 64) held.erase(held.begin(), held.begin() + 32);
        }
      });
    }
    ASSERT_TRUE(eventually([&] { return opened.load() > 20; }));
    broker->stop();
    refused.store(true);
    for (auto& thread : connectors)
      thread.join();
    EXPECT_EQ(broker->server().connections(), 0U) << "round " << round;
  }
}

// ---------------------------------------------------------------------------------------
// Defect 9: connect.name is bounded and escaped in the log.

TEST(ClientName, LongerThan128BytesIsBadRequestAndTheConnectionStays) {
  test_broker broker;
  auto client = open_client(broker);
  // The issue's 1 MiB name would pass max_frame; half of that shows the same.
  client.send_json({{"op", "connect"}, {"id", 1}, {"name", std::string(512 * 1024, 'n')}});
  EXPECT_TRUE(is_err(client.recv(), "bad_request", json(1)));
  EXPECT_TRUE(client.sync().empty());  // still open and working
  const auto answer = request(client, {{"op", "sub"}, {"sid", 1}, {"topic", "a"}, {"id", 2}});
  EXPECT_TRUE(is_answer(answer, "ok", json(2)));

  auto exact = open_client(broker);
  const auto ok = request(exact, {{"op", "connect"}, {"id", 1}, {"name", std::string(128, 'n')}});
  EXPECT_TRUE(is_answer(ok, "ok", json(1)));
}

TEST(ClientName, IsEscapedInEveryLogLine) {
  std::ostringstream captured;
  const auto previous = spdlog::default_logger();
  const auto previous_level = previous->level();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(captured)));
  {
    broker::config settings = test_broker::default_settings();
    settings.log_level = "debug";  // the connect line too
    test_broker broker(settings);
    auto client = open_client(broker);
    const std::string name =
        "svc\nFORGED LINE \x1b[31m\"q\" \\ \xC2\x9B"
        "end";
    const auto ok = request(client, {{"op", "connect"}, {"id", 1}, {"name", name}});
    EXPECT_TRUE(is_answer(ok, "ok", json(1)));
    client.shutdown_write();  // the broker logs the close, with the name
    EXPECT_TRUE(client.wait_closed());
    broker.stop();
  }
  spdlog::set_default_logger(previous);
  spdlog::set_level(previous_level);

  const std::string log = captured.str();
  const std::string escaped = R"(svc\nFORGED LINE \x1b[31m\"q\" \\ \u009bend)";
  std::size_t mentions = 0;
  for (std::size_t at = log.find(escaped); at != std::string::npos; at = log.find(escaped, at + 1))
    ++mentions;
  EXPECT_EQ(mentions, 2U) << log;  // the connect line and the close line
  EXPECT_EQ(log.find("\nFORGED"), std::string::npos) << log;
  EXPECT_EQ(log.find('\x1b'), std::string::npos) << log;
  EXPECT_EQ(log.find("\xC2\x9B"), std::string::npos) << log;
}

}  // namespace
}  // namespace tidings::test
