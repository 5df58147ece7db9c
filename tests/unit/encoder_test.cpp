#include "tidings/protocol/encoder.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tidings/protocol/frame_decoder.hpp"
#include "tidings/protocol/json.hpp"
#include "tidings/protocol/limits.hpp"
#include "tidings/protocol/parser.hpp"

namespace tidings::protocol {
namespace {

// Splits `bytes` into frame bodies with a frame_decoder; every byte must belong to a
// frame, and each length prefix must equal its body's size.
std::vector<std::string> decode_all(std::string_view bytes) {
  std::vector<std::string> bodies;
  frame_decoder decoder(UINT32_MAX);
  while (!bytes.empty()) {
    EXPECT_GE(bytes.size(), frame_prefix_size);
    const auto declared = load_frame_length(reinterpret_cast<const unsigned char*>(bytes.data()));
    const auto r = decoder.next(bytes);
    EXPECT_EQ(r.state, frame_decoder::status::frame);
    if (r.state != frame_decoder::status::frame) break;
    EXPECT_EQ(declared, r.body.size());
    EXPECT_EQ(r.consumed, frame_prefix_size + r.body.size());
    EXPECT_TRUE(json::is_valid(r.body)) << r.body;
    bodies.emplace_back(r.body);
    bytes.remove_prefix(r.consumed);
  }
  return bodies;
}

std::string decode_one(std::string_view bytes) {
  const auto bodies = decode_all(bytes);
  EXPECT_EQ(bodies.size(), 1U);
  return bodies.empty() ? std::string() : bodies.front();
}

// Decodes, parses and returns the frame; `body` keeps the bytes the views point into.
client_frame parse_client(std::string_view bytes, client_parser& parser, std::string& body) {
  body = decode_one(bytes);
  client_frame frame;
  const auto r = parser.parse(body, frame);
  EXPECT_TRUE(r.ok) << body << ": " << r.error.message;
  return frame;
}

server_frame parse_server(std::string_view bytes, server_parser& parser, std::string& body) {
  body = decode_one(bytes);
  server_frame frame;
  const auto r = parser.parse(body, frame);
  EXPECT_TRUE(r.ok) << body << ": " << r.error.message;
  return frame;
}

// Topics may hold any printable ASCII, `"` and `\` included: the encoders must escape.
const std::vector<std::string_view> tricky_topics = {
    "a", "orders.created", R"(quo"te.back\slash)", R"(\)", R"(")", R"(a.\u0041)", "$SYS.x",
};

TEST(EncoderTest, Info) {
  info_message info;
  info.server = "tid\"ings\\d \xC3\xA9";
  info.version = "0.1.0";
  info.proto = 1;
  info.max_frame = default_max_frame;
  info.max_pending = 64ULL << 20;
  info.write_deadline_ms = 10000;
  info.auth_required = true;
  info.client_id = UINT64_MAX;
  info.ping_interval_ms = 30000;
  std::string out;
  encode_info(out, info);
  server_parser parser;
  std::string body;
  const auto frame = parse_server(out, parser, body);
  ASSERT_EQ(frame.kind, op::info);
  const auto& back = std::get<info_message>(frame.body);
  EXPECT_EQ(back.server, info.server);
  EXPECT_EQ(back.version, info.version);
  EXPECT_EQ(back.proto, 1);
  EXPECT_EQ(back.max_frame, info.max_frame);
  EXPECT_EQ(back.max_pending, info.max_pending);
  EXPECT_EQ(back.write_deadline_ms, info.write_deadline_ms);
  EXPECT_TRUE(back.auth_required);
  EXPECT_EQ(back.client_id, info.client_id);
  EXPECT_EQ(back.ping_interval_ms, info.ping_interval_ms);
  EXPECT_FALSE(frame.id.present());
}

TEST(EncoderTest, OkPingPongWithAndWithoutId) {
  struct bare_case {
    void (*encode)(std::string&, std::string_view);
    op kind;
  };
  const std::vector<bare_case> encoders = {
      {encode_ok, op::ok},
      {[](std::string& out, std::string_view id) { encode_ping(out, id); }, op::ping},
      {[](std::string& out, std::string_view id) { encode_pong(out, id); }, op::pong},
  };
  const std::vector<std::string_view> ids = {"", "1", "-9007199254740991", R"("abc")",
                                             R"("a\"b\u0041")"};
  server_parser parser;
  for (const auto& e : encoders) {
    for (const auto id : ids) {
      SCOPED_TRACE(std::string(op_name(e.kind)) + " id " + std::string(id));
      std::string out;
      e.encode(out, id);
      std::string body;
      const auto frame = parse_server(out, parser, body);
      EXPECT_EQ(frame.kind, e.kind);
      EXPECT_EQ(frame.id.present(), !id.empty());
      EXPECT_EQ(frame.id.raw, id);
    }
  }
  std::string out;
  encode_ping(out);
  EXPECT_EQ(decode_one(out), R"({"op":"ping"})");
  out.clear();
  encode_pong(out, "7");
  EXPECT_EQ(decode_one(out), R"({"op":"pong","id":7})");
  // ping and pong are both sides' ops: the client's parser reads them too.
  client_parser client;
  std::string body;
  EXPECT_EQ(parse_client(out, client, body).kind, op::pong);
}

TEST(EncoderTest, ErrForEveryCode) {
  server_parser parser;
  for (std::size_t i = 0; i < error_code_count; ++i) {
    const auto code = static_cast<error_code>(i);
    SCOPED_TRACE(std::string(wire_name(code)));
    for (const auto& [id, topic] : std::vector<std::pair<std::string_view, std::string_view>>{
             {"", ""}, {"12", ""}, {R"("x")", "_INBOX.a.1"}, {"", R"(t"op\ic)"}}) {
      std::string out;
      const std::string_view message = "bad \"thing\"\n\\ at\ttab \xC3\xA9";
      encode_err(out, code, message, id, topic);
      std::string body;
      const auto frame = parse_server(out, parser, body);
      ASSERT_EQ(frame.kind, op::err);
      const auto& err = std::get<err_message>(frame.body);
      EXPECT_EQ(err.code, wire_name(code));
      EXPECT_EQ(error_code_from_wire(err.code), code);
      EXPECT_EQ(err.message, message);
      EXPECT_EQ(err.topic, topic);
      EXPECT_EQ(frame.id.raw, id);
    }
  }
}

TEST(EncoderTest, Connect) {
  std::vector<connect_message> cases(4);
  cases[1].name = "svc \"one\"";
  cases[1].token = "t\\k";
  cases[1].echo = false;
  cases[2].user = "alice";
  cases[2].pass = std::string_view("p\0ss\n", 5);
  cases[3].name = "";
  client_parser parser;
  for (const auto& c : cases) {
    for (const std::string_view id : {"", "5", R"("c-1")"}) {
      std::string out;
      encode_connect(out, c, id);
      std::string body;
      const auto frame = parse_client(out, parser, body);
      ASSERT_EQ(frame.kind, op::connect);
      const auto& back = std::get<connect_message>(frame.body);
      EXPECT_EQ(back.proto, c.proto);
      EXPECT_EQ(back.name, c.name);
      EXPECT_EQ(back.token, c.token);
      EXPECT_EQ(back.user, c.user);
      EXPECT_EQ(back.pass, c.pass);
      EXPECT_EQ(back.echo, c.echo);
      EXPECT_EQ(frame.id.raw, id);
    }
  }
}

TEST(EncoderTest, Pub) {
  struct pub_case {
    std::string_view topic;
    std::string_view data;
    std::string_view reply = {};
    std::string_view headers = {};
    std::string_view id = {};
  };
  std::vector<pub_case> cases = {
      {"a", "1"},
      {"orders.created", R"({"order":42,"total":9.5})", "_INBOX.x.1", R"({"k":"v"})", "9"},
      {"t", "null"},
      {"t", "-0.0", {}, "{}", R"("id")"},
      {"t", "12345678901234567890123456789"},
      {"t", R"("a\u0041\n")"},
      {"t", "[ 1 , 2 ]", "r", R"({ "a" : "b" })"},
  };
  for (const auto topic : tricky_topics)
    cases.push_back({topic, "true", topic});
  client_parser parser;
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.topic) + " " + std::string(c.data));
    pub_message pub;
    pub.topic = c.topic;
    pub.data = c.data;
    pub.reply = c.reply;
    pub.headers = c.headers;
    std::string out;
    encode_pub(out, pub, c.id);
    std::string body;
    const auto frame = parse_client(out, parser, body);
    ASSERT_EQ(frame.kind, op::pub);
    const auto& back = std::get<pub_message>(frame.body);
    EXPECT_EQ(back.topic, c.topic);
    EXPECT_EQ(back.data, c.data);
    EXPECT_EQ(back.reply, c.reply);
    EXPECT_EQ(back.headers, c.headers);
    EXPECT_EQ(frame.id.raw, c.id);
  }
}

TEST(EncoderTest, SubAndUnsub) {
  client_parser parser;
  for (const std::uint64_t sid : {std::uint64_t{1}, std::uint64_t{10}, max_safe_integer}) {
    for (const auto topic :
         {std::string_view("orders.*"), std::string_view(">"), std::string_view(R"(a"b.\.>)")}) {
      for (const auto queue :
           {std::string_view(), std::string_view("workers"), std::string_view(R"(q"\)")}) {
        sub_message sub;
        sub.sid = sid;
        sub.topic = topic;
        sub.queue = queue;
        std::string out;
        encode_sub(out, sub, "1");
        std::string body;
        const auto frame = parse_client(out, parser, body);
        ASSERT_EQ(frame.kind, op::sub);
        const auto& back = std::get<sub_message>(frame.body);
        EXPECT_EQ(back.sid, sid);
        EXPECT_EQ(back.topic, topic);
        EXPECT_EQ(back.queue, queue);
        EXPECT_EQ(frame.id.integer, 1);
      }
    }
    for (const std::uint64_t max : {std::uint64_t{0}, std::uint64_t{1}, max_safe_integer}) {
      unsub_message unsub;
      unsub.sid = sid;
      unsub.max = max;
      std::string out;
      encode_unsub(out, unsub);
      std::string body;
      const auto frame = parse_client(out, parser, body);
      ASSERT_EQ(frame.kind, op::unsub);
      const auto& back = std::get<unsub_message>(frame.body);
      EXPECT_EQ(back.sid, sid);
      EXPECT_EQ(back.max, max);
      EXPECT_EQ(body.find("\"max\"") != std::string::npos, max != 0);  // 0: no max at all
    }
  }
}

TEST(EncoderTest, MsgRoundTrips) {
  struct msg_case {
    std::uint64_t sid;
    std::string_view topic;
    std::string_view data;
    std::string_view reply = {};
    std::string_view headers = {};
  };
  std::vector<msg_case> cases = {
      {1, "orders.created", R"({"order":42})"},
      {9, "a", "null", "_INBOX.r", R"({"h":"v"})"},
      {10, "a.b", "1e3", {}, "{}"},
      {max_safe_integer, "x", R"("\ud83d\ude00")"},
  };
  for (const auto topic : tricky_topics)
    cases.push_back({99, topic, "[]", topic});
  server_parser parser;
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.sid) + " " + std::string(c.topic));
    msg_message msg;
    msg.sid = c.sid;
    msg.topic = c.topic;
    msg.data = c.data;
    msg.reply = c.reply;
    msg.headers = c.headers;
    std::string whole;
    encode_msg(whole, msg);
    std::string body;
    const auto frame = parse_server(whole, parser, body);
    ASSERT_EQ(frame.kind, op::msg);
    const auto& back = std::get<msg_message>(frame.body);
    EXPECT_EQ(back.sid, c.sid);
    EXPECT_EQ(back.topic, c.topic);
    EXPECT_EQ(back.data, c.data);
    EXPECT_EQ(back.reply, c.reply);
    EXPECT_EQ(back.headers, c.headers);
  }
}

TEST(EncoderTest, MsgPrefixPlusSharedBodyEqualsEncodeMsg) {
  const std::string_view topic = R"(a"b\c.d)";
  const std::string_view data = R"({"n":[1,2,3],"s":"x"})";
  std::string shared;
  encode_msg_body(shared, topic, data, "_INBOX.1", R"({"k":"v"})");
  server_parser parser;
  for (const std::uint64_t sid :
       {std::uint64_t{1}, std::uint64_t{9}, std::uint64_t{10}, std::uint64_t{99},
        std::uint64_t{100}, std::uint64_t{123456789}, max_safe_integer}) {
    SCOPED_TRACE(sid);
    const msg_prefix prefix(sid, shared.size());
    EXPECT_LE(prefix.size(), msg_prefix::capacity);
    EXPECT_EQ(prefix.view(), std::string_view(prefix.data(), prefix.size()));
    // The length prefix covers the per-subscriber part after it plus the shared body.
    EXPECT_EQ(load_frame_length(reinterpret_cast<const unsigned char*>(prefix.data())),
              prefix.size() - frame_prefix_size + shared.size());
    EXPECT_EQ(prefix.view().substr(frame_prefix_size),
              R"({"op":"msg","sid":)" + std::to_string(sid) + ",");

    const std::string frame_bytes = std::string(prefix.view()) + shared;
    msg_message msg;
    msg.sid = sid;
    msg.topic = topic;
    msg.data = data;
    msg.reply = "_INBOX.1";
    msg.headers = R"({"k":"v"})";
    std::string whole;
    encode_msg(whole, msg);
    EXPECT_EQ(frame_bytes, whole);

    std::string body;
    const auto frame = parse_server(frame_bytes, parser, body);
    ASSERT_EQ(frame.kind, op::msg);
    const auto& back = std::get<msg_message>(frame.body);
    EXPECT_EQ(back.sid, sid);
    EXPECT_EQ(back.topic, topic);
    EXPECT_EQ(back.data, data);
  }
  // The largest sid a uint64 holds still fits the prefix.
  const msg_prefix widest(UINT64_MAX, 10);
  EXPECT_EQ(widest.view().substr(frame_prefix_size), R"({"op":"msg","sid":18446744073709551615,)");
}

TEST(EncoderTest, WriteMsgPrefixMatchesMsgPrefix) {
  for (const std::uint64_t sid :
       {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{9}, std::uint64_t{10}, std::uint64_t{99},
        std::uint64_t{100}, std::uint64_t{999999}, max_safe_integer, std::uint64_t{UINT64_MAX}}) {
    SCOPED_TRACE(sid);
    const msg_prefix prefix(sid, 321);
    char buffer[msg_prefix::capacity];
    const std::size_t written = write_msg_prefix(buffer, sid, 321);
    EXPECT_EQ(std::string_view(buffer, written), prefix.view());
    EXPECT_EQ(msg_prefix_size(sid), prefix.size());
  }
}

TEST(EncoderTest, MsgBodyEscapesTopicAndReply) {
  std::string shared;
  encode_msg_body(shared, R"(a"b\c)", "1", R"(r"\)");
  EXPECT_EQ(shared, R"("topic":"a\"b\\c","reply":"r\"\\","data":1})");
  shared.clear();
  encode_msg_body(shared, "t", R"({ "x" : 1 })", {}, "{}");
  EXPECT_EQ(shared, R"("topic":"t","headers":{},"data":{ "x" : 1 }})");
}

TEST(EncoderTest, FramesAppendToOneBuffer) {
  std::string out;
  encode_ping(out);
  pub_message pub;
  pub.topic = "a";
  pub.data = "[1]";
  encode_pub(out, pub, "2");
  encode_ok(out, "3");
  msg_message msg;
  msg.sid = 4;
  msg.topic = "b";
  msg.data = "{}";
  encode_msg(out, msg);
  encode_err(out, error_code::bad_json, "m");
  const auto bodies = decode_all(out);
  ASSERT_EQ(bodies.size(), 5U);
  EXPECT_EQ(bodies[0], R"({"op":"ping"})");
  EXPECT_EQ(bodies[1], R"({"op":"pub","topic":"a","id":2,"data":[1]})");
  EXPECT_EQ(bodies[2], R"({"op":"ok","id":3})");
  EXPECT_EQ(bodies[3], R"({"op":"msg","sid":4,"topic":"b","data":{}})");
  EXPECT_EQ(bodies[4], R"({"op":"err","code":"bad_json","message":"m"})");
}

TEST(EncoderTest, BeginAndFinishFrame) {
  std::string out = "xy";
  const auto start = begin_frame(out);
  EXPECT_EQ(start, 2U);
  EXPECT_EQ(out.size(), 2U + frame_prefix_size);
  out += R"({"op":"ping"})";
  finish_frame(out, start);
  EXPECT_EQ(decode_one(std::string_view(out).substr(2)), R"({"op":"ping"})");
}

TEST(EncoderTest, AppendInteger) {
  const std::vector<std::pair<std::int64_t, std::string>> cases = {
      {0, "0"},
      {-1, "-1"},
      {42, "42"},
      {9007199254740991, "9007199254740991"},
      {-9007199254740991, "-9007199254740991"},
      {INT64_MAX, "9223372036854775807"},
      {INT64_MIN, "-9223372036854775808"},
  };
  for (const auto& [value, text] : cases) {
    std::string out = "id:";
    append_integer(out, value);
    EXPECT_EQ(out, "id:" + text);
  }
}

TEST(ErrorCodeTest, WireNamesRoundTripAndMatchSection8) {
  struct code_case {
    error_code code;
    std::string_view name;
    bool closes;
  };
  const std::vector<code_case> cases = {
      {error_code::bad_frame, "bad_frame", true},
      {error_code::frame_too_large, "frame_too_large", true},
      {error_code::bad_json, "bad_json", false},
      {error_code::unknown_op, "unknown_op", false},
      {error_code::bad_request, "bad_request", false},
      {error_code::invalid_topic, "invalid_topic", false},
      {error_code::no_responders, "no_responders", false},
      {error_code::permission_denied, "permission_denied", false},
      {error_code::too_many_subscriptions, "too_many_subscriptions", false},
      {error_code::auth_required, "auth_required", true},
      {error_code::auth_failed, "auth_failed", true},
      {error_code::slow_consumer, "slow_consumer", true},
      {error_code::stale_connection, "stale_connection", true},
      {error_code::too_many_connections, "too_many_connections", true},
      {error_code::shutting_down, "shutting_down", true},
  };
  ASSERT_EQ(cases.size(), error_code_count);
  for (const auto& c : cases) {
    EXPECT_EQ(wire_name(c.code), c.name);
    EXPECT_EQ(error_code_from_wire(c.name), c.code);
    EXPECT_EQ(closes_connection(c.code), c.closes) << c.name;
  }
  EXPECT_EQ(error_code_from_wire("no_such_code"), std::nullopt);
  EXPECT_EQ(error_code_from_wire(""), std::nullopt);
  EXPECT_EQ(error_code_from_wire("BAD_JSON"), std::nullopt);
}

TEST(OpNameTest, EveryOp) {
  const std::vector<std::pair<op, std::string_view>> cases = {
      {op::connect, "connect"}, {op::pub, "pub"},   {op::sub, "sub"},   {op::unsub, "unsub"},
      {op::ping, "ping"},       {op::pong, "pong"}, {op::info, "info"}, {op::msg, "msg"},
      {op::ok, "ok"},           {op::err, "err"},
  };
  for (const auto& [value, name] : cases)
    EXPECT_EQ(op_name(value), name);
}

}  // namespace
}  // namespace tidings::protocol
