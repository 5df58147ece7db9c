#pragma once

// Helpers shared by the integration tests: connecting, asserting answers, and reading the
// raw bytes of a delivered `data`. Every wait goes through raw_client, so every wait has
// a deadline; "nothing else arrived" is always proven with a ping/pong barrier (sync()).

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "raw_client.hpp"
#include "test_broker.hpp"
#include "tidings/protocol/parser.hpp"

namespace tidings::test {

// A bounded poll for a truly eventual condition that the protocol cannot announce (the
// broker noticing a closed socket): checks every millisecond until `timeout`.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// A client that has read its `info`.
inline raw_client open_client(test_broker& broker) {
  raw_client client(broker.port());
  client.read_info();
  return client;
}

inline std::vector<json> only_op(const std::vector<json>& frames, std::string_view op) {
  std::vector<json> out;
  for (const auto& frame : frames) {
    if (frame.value("op", "") == op) out.push_back(frame);
  }
  return out;
}

// `frame` is `err` with `code`, without `id` (when `id` is nullopt) or with exactly `id`.
inline ::testing::AssertionResult is_err(const json& frame, std::string_view code,
                                         const std::optional<json>& id = std::nullopt) {
  if (frame.value("op", "") != "err") {
    return ::testing::AssertionFailure() << "not an err: " << frame.dump();
  }
  if (!frame.contains("code") || !frame["code"].is_string() || frame["code"] != code) {
    return ::testing::AssertionFailure() << "expected code " << code << ": " << frame.dump();
  }
  if (!frame.contains("message") || !frame["message"].is_string()) {
    return ::testing::AssertionFailure() << "err without a string message: " << frame.dump();
  }
  if (!id && frame.contains("id")) {
    return ::testing::AssertionFailure() << "err must not carry an id: " << frame.dump();
  }
  if (id &&
      (!frame.contains("id") || frame["id"] != *id || frame["id"].is_string() != id->is_string())) {
    return ::testing::AssertionFailure() << "expected id " << id->dump() << ": " << frame.dump();
  }
  return ::testing::AssertionSuccess();
}

// `frame` is `op` (ok or pong) with exactly `id`.
inline ::testing::AssertionResult is_answer(const json& frame, std::string_view op,
                                            const json& id) {
  if (frame.value("op", "") != op || !frame.contains("id") || frame["id"] != id ||
      frame["id"].is_string() != id.is_string()) {
    return ::testing::AssertionFailure()
           << "expected " << op << " with id " << id.dump() << ": " << frame.dump();
  }
  return ::testing::AssertionSuccess();
}

// The next frame that is not a `msg`; the msgs passed over go to `msgs` if given.
inline json next_answer(raw_client& client, std::vector<json>* msgs = nullptr) {
  for (;;) {
    json frame = client.recv();
    if (frame.value("op", "") != "msg") return frame;
    if (msgs != nullptr) msgs->push_back(std::move(frame));
  }
}

// Sends `frame` (which carries an `id`) and returns its answer.
inline json request(raw_client& client, const json& frame) {
  client.send_json(frame);
  return next_answer(client);
}

// Sends a raw body (which carries an `id`) and returns its answer.
inline json request_raw(raw_client& client, std::string_view body) {
  client.send_frame(body);
  return next_answer(client);
}

// Subscribes and waits for the `ok`.
inline void subscribe(raw_client& client, std::uint64_t sid, const std::string& topic,
                      const std::string& queue = {}) {
  json frame = {
      {"op", "sub"}, {"sid", sid}, {"topic", topic}, {"id", "sub-" + std::to_string(sid)}};
  if (!queue.empty()) frame["queue"] = queue;
  const json answer = request(client, frame);
  ASSERT_TRUE(is_answer(answer, "ok", frame["id"])) << "subscribing to " << topic;
}

// Sends a body that must fail with `code` and no `id`, then proves with a barrier that
// exactly that err came back and the connection is still open.
inline ::testing::AssertionResult fails_without_id(raw_client& client, std::string_view body,
                                                   std::string_view code) {
  client.send_frame(body);
  const auto frames = client.sync();
  if (frames.size() != 1) {
    ::testing::AssertionResult r = ::testing::AssertionFailure();
    r << "expected exactly one err for " << body << ", got " << frames.size() << " frames:";
    for (const auto& f : frames)
      r << ' ' << f.dump();
    return r;
  }
  auto result = is_err(frames.front(), code);
  if (!result) result << " (for " << body << ")";
  return result;
}

// Sends a body with `id` that must fail with `code` carrying that id; the barrier after
// it proves nothing else came back and the connection is open.
inline ::testing::AssertionResult fails_with_id(raw_client& client, std::string_view body,
                                                std::string_view code, const json& id) {
  client.send_frame(body);
  const auto frames = client.sync();
  if (frames.size() != 1) {
    ::testing::AssertionResult r = ::testing::AssertionFailure();
    r << "expected exactly one err for " << body << ", got " << frames.size() << " frames:";
    for (const auto& f : frames)
      r << ' ' << f.dump();
    return r;
  }
  auto result = is_err(frames.front(), code, id);
  if (!result) result << " (for " << body << ")";
  return result;
}

// The parts of a `msg` frame as raw JSON text, read with the protocol library's own
// client-side parser, so tests can compare `data` and `headers` byte for byte.
struct raw_msg {
  std::uint64_t sid = 0;
  std::string topic;
  std::string data;
  std::optional<std::string> reply;
  std::optional<std::string> headers;
};

inline std::optional<raw_msg> parse_raw_msg(std::string_view body) {
  protocol::server_parser parser;
  protocol::server_frame frame;
  if (!parser.parse(body, frame) || frame.kind != protocol::op::msg) return std::nullopt;
  const auto& msg = std::get<protocol::msg_message>(frame.body);
  raw_msg out;
  out.sid = msg.sid;
  out.topic = std::string(msg.topic);
  out.data = std::string(msg.data);
  // The model leaves these empty when absent; a present reply is a non-empty topic and
  // present headers are at least `{}`, so empty means absent.
  if (!msg.reply.empty()) out.reply = std::string(msg.reply);
  if (!msg.headers.empty()) out.headers = std::string(msg.headers);
  return out;
}

}  // namespace tidings::test
