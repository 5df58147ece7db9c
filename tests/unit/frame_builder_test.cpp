// The client's checks of a publish or subscription and its `pub` frames
// (detail/frame_builder), table by table: each refusal carries the code the server would
// send, and what is accepted parses back as the same frame.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tidings/client/detail/frame_builder.hpp"
#include "tidings/protocol/frame_decoder.hpp"
#include "tidings/protocol/limits.hpp"
#include "tidings/protocol/parser.hpp"

namespace tidings::client::detail {
namespace {

using protocol::error_code;

std::string nested_array(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') +
         std::string(static_cast<std::size_t>(depth), ']');
}

struct publish_case {
  const char* name;
  std::string topic;
  std::string data;
  std::string reply;
  std::vector<std::pair<std::string, std::string>> headers;
  bool with_headers;
  client::error_code expected;  // empty: accepted
};

TEST(ClientFrameBuilder, ChecksEveryArgumentOfAPublish) {
  const client::error_code ok{};
  const std::vector<publish_case> cases = {
      {"plain", "a.b", "1", "", {}, false, ok},
      {"object data", "a.b", R"({"x":[1,2]})", "", {}, false, ok},
      {"reply", "a.b", "1", "_INBOX.x.1", {}, false, ok},
      {"empty headers", "a.b", "1", "", {}, true, ok},
      {"headers", "a.b", "1", "", {{"k", "v"}, {"q", "w\n\"x\""}}, true, ok},
      {"empty topic", "", "1", "", {}, false, make_error_code(error_code::invalid_topic)},
      {"empty token", "a..b", "1", "", {}, false, make_error_code(error_code::invalid_topic)},
      {"wildcard topic", "a.*", "1", "", {}, false, make_error_code(error_code::invalid_topic)},
      {"tail wildcard", "a.>", "1", "", {}, false, make_error_code(error_code::invalid_topic)},
      {"reserved", "$sys.x", "1", "", {}, false, make_error_code(error_code::permission_denied)},
      {"wildcard reply", "a", "1", "r.*", {}, false, make_error_code(error_code::invalid_topic)},
      {"bad json", "a", "{", "", {}, false, make_error_code(error_code::bad_json)},
      {"empty data", "a", "", "", {}, false, make_error_code(error_code::bad_json)},
      {"two values", "a", "1 2", "", {}, false, make_error_code(error_code::bad_json)},
      {"deepest allowed", "a", nested_array(protocol::max_json_depth - 1), "", {}, false, ok},
      {"one level too deep",
       "a",
       nested_array(protocol::max_json_depth),
       "",
       {},
       false,
       make_error_code(error_code::bad_json)},
      {"empty header name",
       "a",
       "1",
       "",
       {{"", "v"}},
       true,
       make_error_code(error_code::bad_request)},
      {"repeated header",
       "a",
       "1",
       "",
       {{"k", "1"}, {"k", "2"}},
       true,
       make_error_code(error_code::bad_request)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    publish_options extra;
    extra.reply = c.reply;
    extra.headers = c.with_headers ? &c.headers : nullptr;
    std::string headers_json = "stale";
    const auto result = check_publish(c.topic, c.data, extra, headers_json);
    EXPECT_EQ(result.code, c.expected) << result.message;
    EXPECT_EQ(result.message.empty(), !c.expected);
    if (!c.expected && !c.with_headers) {
      EXPECT_EQ(headers_json, "");
    }
  }
}

TEST(ClientFrameBuilder, EncodesHeadersAsOneEscapedObject) {
  struct header_case {
    header_list headers;
    std::string expected;
  };
  const std::vector<header_case> cases = {
      {{}, "{}"},
      {{{"a", "1"}}, R"({"a":"1"})"},
      {{{"a", "1"}, {"b", ""}}, R"({"a":"1","b":""})"},
      {{{"q\"", "line\nbreak\\"}}, R"({"q\"":"line\nbreak\\"})"},
  };
  for (const auto& c : cases) {
    std::string out = "previous content";
    EXPECT_FALSE(encode_headers(c.headers, out));
    EXPECT_EQ(out, c.expected);
  }
  std::string out;
  const auto repeated = encode_headers({{"a", "1"}, {"b", "2"}, {"a", "3"}}, out);
  EXPECT_EQ(repeated.code, make_error_code(error_code::bad_request));
  EXPECT_NE(repeated.message.find("'a'"), std::string::npos) << repeated.message;
}

// Decodes the one frame in `bytes` and parses it as a client frame.
protocol::client_frame parse_one(std::string_view bytes, protocol::client_parser& parser,
                                 std::string& body) {
  protocol::frame_decoder decoder;
  const auto result = decoder.next(bytes);
  EXPECT_EQ(result.state, protocol::frame_decoder::status::frame);
  EXPECT_EQ(result.consumed, bytes.size());
  body = std::string(result.body);
  protocol::client_frame frame;
  EXPECT_TRUE(parser.parse(body, frame).ok) << body;
  return frame;
}

TEST(ClientFrameBuilder, AppendsAPubFrameThatParsesBackTheSame) {
  struct pub_case {
    std::string topic, data, reply, headers;
    std::int64_t id;
  };
  const std::vector<pub_case> cases = {
      {"a", "1", "", "", 0},
      {"a.b.c", R"({"k":"v"})", "_INBOX.x.7", "", 12},
      {"t", R"("text")", "", R"({"h":"1"})", 1},
      {"t", "[]", "r", R"({})", (std::int64_t{1} << 53) - 1},
  };
  protocol::client_parser parser;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.topic + " " + c.data);
    std::string out = "before";
    ASSERT_FALSE(
        append_pub(out, c.topic, c.data, c.reply, c.headers, c.id, protocol::default_max_frame));
    ASSERT_EQ(out.substr(0, 6), "before");  // appended, not replaced
    std::string body;
    const auto frame = parse_one(std::string_view(out).substr(6), parser, body);
    ASSERT_EQ(frame.kind, protocol::op::pub);
    const auto& pub = std::get<protocol::pub_message>(frame.body);
    EXPECT_EQ(pub.topic, c.topic);
    EXPECT_EQ(pub.data, c.data);
    EXPECT_EQ(pub.reply, c.reply);
    EXPECT_EQ(pub.headers, c.headers);
    if (c.id == 0) {
      EXPECT_FALSE(frame.id.present());
    } else {
      EXPECT_EQ(frame.id.type, protocol::request_id::kind::integer);
      EXPECT_EQ(frame.id.integer, c.id);
    }
  }
}

TEST(ClientFrameBuilder, RefusesAFrameAboveMaxFrameAndLeavesTheOutputAsItWas) {
  // Measure the frame once, then allow exactly it and one byte less.
  std::string probe;
  ASSERT_FALSE(append_pub(probe, "a", R"("xxxxxxxx")", "", "", 5, protocol::default_max_frame));
  const std::uint64_t body = probe.size() - protocol::frame_prefix_size;

  std::string out = "kept";
  EXPECT_FALSE(append_pub(out, "a", R"("xxxxxxxx")", "", "", 5, body));
  EXPECT_EQ(out, "kept" + probe);

  out = "kept";
  const auto refused = append_pub(out, "a", R"("xxxxxxxx")", "", "", 5, body - 1);
  EXPECT_EQ(refused.code, make_error_code(error_code::frame_too_large));
  EXPECT_EQ(refused.message, "the frame would be " + std::to_string(body) +
                                 " bytes; the server accepts " + std::to_string(body - 1));
  EXPECT_EQ(out, "kept");
}

TEST(ClientFrameBuilder, ChecksEveryArgumentOfASubscription) {
  struct sub_case {
    const char* name;
    std::string pattern;
    std::string queue;
    std::uint64_t max;
    bool with_handler;
    client::error_code expected;
  };
  const client::error_code ok{};
  const std::vector<sub_case> cases = {
      {"plain", "a.b", "", 0, true, ok},
      {"wildcards", "a.*.>", "", 0, true, ok},
      {"queue", "a", "workers", 0, true, ok},
      {"max", "a", "", 3, true, ok},
      {"largest max", "a", "", protocol::max_safe_integer, true, ok},
      {"empty pattern", "", "", 0, true, make_error_code(error_code::invalid_topic)},
      {"tail not last", "a.>.b", "", 0, true, make_error_code(error_code::invalid_topic)},
      {"empty token", "a..b", "", 0, true, make_error_code(error_code::invalid_topic)},
      {"bad queue", "a", "has space", 0, true, make_error_code(error_code::bad_request)},
      {"max too large", "a", "", protocol::max_safe_integer + 1, true,
       make_error_code(error_code::bad_request)},
      {"no handler", "a", "", 0, false, make_error_code(errc::invalid_argument)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    subscribe_options extra;
    extra.queue = c.queue;
    extra.max = c.max;
    message_handler handler;
    if (c.with_handler) handler = [](const message_view&) {};
    const auto result = check_subscription(c.pattern, handler, extra);
    EXPECT_EQ(result.code, c.expected) << result.message;
    EXPECT_EQ(result.message.empty(), !c.expected);
  }
}

TEST(ClientFrameBuilder, WritesIdsAsTheWireDoes) {
  EXPECT_EQ(id_text(1), "1");
  EXPECT_EQ(id_text(1234567890123), "1234567890123");
  EXPECT_EQ(id_text(-5), "-5");
}

}  // namespace
}  // namespace tidings::client::detail
