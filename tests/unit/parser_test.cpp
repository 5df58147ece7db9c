#include "tidings/protocol/parser.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tidings/protocol/limits.hpp"

namespace tidings::protocol {
namespace {

constexpr std::string_view max_id = "9007199254740991";   // 2^53 - 1
constexpr std::string_view too_big = "9007199254740992";  // 2^53

std::string repeat(std::string_view text, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i)
    out += text;
  return out;
}

std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

// `{"m0":0,...,"m<n-1>":n-1,` followed by `tail`.
std::string many_members(int n, std::string_view tail) {
  std::string out = "{";
  for (int i = 0; i < n; ++i)
    out += "\"m" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  return out + std::string(tail);
}

// One row of an error table. `id` is the raw id the `err` must carry; empty: none.
struct error_case {
  std::string body;
  error_code code;
  std::string_view id = {};
  bool id_valid = true;  // only checked when `id` is empty
};

// The id an `err` answering this frame carries, as a server would decide it.
std::string_view carried_id(const parse_result& r, const request_id& id) {
  return r.error.id_valid && id.present() ? id.raw : std::string_view{};
}

template <typename Parser, typename Frame>
void expect_errors(const std::vector<error_case>& cases) {
  Parser parser;  // one parser for all: state must not leak between frames
  for (const auto& c : cases) {
    SCOPED_TRACE("body: " + c.body);
    Frame frame;
    const auto r = parser.parse(c.body, frame);
    ASSERT_FALSE(r.ok);
    EXPECT_FALSE(static_cast<bool>(r));
    EXPECT_EQ(wire_name(r.error.code), wire_name(c.code));
    EXPECT_FALSE(r.error.message.empty());
    EXPECT_EQ(carried_id(r, frame.id), c.id);
    if (!c.id.empty()) {
      EXPECT_TRUE(r.error.id_valid);
    } else if (!c.id_valid) {
      EXPECT_FALSE(r.error.id_valid);
      EXPECT_FALSE(frame.id.present());
    }
  }
}

void expect_client_errors(const std::vector<error_case>& cases) {
  expect_errors<client_parser, client_frame>(cases);
}

void expect_server_errors(const std::vector<error_case>& cases) {
  expect_errors<server_parser, server_frame>(cases);
}

class ClientParserTest : public testing::Test {
 protected:
  // Parses `body` (kept alive in body_) and expects success.
  const client_frame& ok(std::string body) {
    body_ = std::move(body);
    frame_ = {};
    const auto r = parser_.parse(body_, frame_);
    EXPECT_TRUE(r.ok) << body_ << ": " << wire_name(r.error.code) << ": " << r.error.message;
    return frame_;
  }
  template <typename T>
  const T& ok_as(std::string body, op kind) {
    const auto& frame = ok(std::move(body));
    EXPECT_EQ(frame.kind, kind);
    static const T empty{};
    const T* message = std::get_if<T>(&frame.body);
    EXPECT_NE(message, nullptr) << body_;
    return message != nullptr ? *message : empty;
  }
  const pub_message& pub(std::string body) { return ok_as<pub_message>(std::move(body), op::pub); }

  bool inside_body(std::string_view view) const {
    return view.data() >= body_.data() && view.data() + view.size() <= body_.data() + body_.size();
  }

  client_parser parser_;
  client_frame frame_;
  std::string body_;
};

// ---------------------------------------------------------------------------------------
// Every op with every field.

TEST_F(ClientParserTest, Connect) {
  const auto& full = ok_as<connect_message>(
      R"({"op":"connect","proto":1,"name":"svc","token":"tok","echo":false,"id":1})", op::connect);
  EXPECT_EQ(full.proto, 1);
  EXPECT_EQ(full.name, "svc");
  EXPECT_EQ(full.token, "tok");
  EXPECT_EQ(full.user, std::nullopt);
  EXPECT_EQ(full.pass, std::nullopt);
  EXPECT_FALSE(full.echo);
  EXPECT_EQ(frame_.id.integer, 1);

  const auto& user = ok_as<connect_message>(
      R"({"op":"connect","user":"alice","pass":"s\u00e9cret","echo":true})", op::connect);
  EXPECT_EQ(user.user, "alice");
  EXPECT_EQ(user.pass,
            "s\xC3\xA9"
            "cret");
  EXPECT_EQ(user.name, std::nullopt);
  EXPECT_TRUE(user.echo);
  EXPECT_FALSE(frame_.id.present());

  const auto& defaults = ok_as<connect_message>(R"({"op":"connect"})", op::connect);
  EXPECT_EQ(defaults.proto, 1);
  EXPECT_TRUE(defaults.echo);
  EXPECT_FALSE(defaults.name || defaults.token || defaults.user || defaults.pass);

  const auto& nulls = ok_as<connect_message>(
      R"({"op":"connect","proto":null,"name":null,"token":null,"user":null,"pass":null,"echo":null})",
      op::connect);
  EXPECT_EQ(nulls.proto, 1);
  EXPECT_TRUE(nulls.echo);
  EXPECT_FALSE(nulls.name || nulls.token || nulls.user || nulls.pass);

  // Empty strings are given values, not absent ones.
  const auto& empty = ok_as<connect_message>(R"({"op":"connect","name":""})", op::connect);
  EXPECT_EQ(empty.name, "");
}

TEST_F(ClientParserTest, ConnectNameIsAtMost128Bytes) {
  // Issue 9, defect 9: the name goes into every log line about the connection.
  const std::string longest(128, 'n');
  EXPECT_EQ(
      ok_as<connect_message>(R"({"op":"connect","name":")" + longest + "\"}", op::connect).name,
      longest);
  // Counted once decoded: 128 escaped characters are 128 bytes.
  EXPECT_EQ(ok_as<connect_message>(R"({"op":"connect","name":")" + repeat("\\u0041", 128) + "\"}",
                                   op::connect)
                .name,
            std::string(128, 'A'));
  client_frame frame;
  for (const std::string& name :
       {std::string(129, 'n'), repeat("\\u00e9", 65), repeat("line\\n", 300000)}) {
    const std::string body = R"({"op":"connect","id":7,"name":")" + name + "\"}";
    const auto r = parser_.parse(body, frame);
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.error.code, error_code::bad_request);
    EXPECT_TRUE(r.error.id_valid);
    EXPECT_EQ(r.error.message, "'name' must be at most 128 bytes");
  }
}

TEST_F(ClientParserTest, Pub) {
  const auto& p = pub(
      R"({"op":"pub","topic":"orders.created","reply":"_INBOX.a.1","headers":{"trace":"abc","k":"v"},"data":{"order":42,"total":9.5},"id":"req-1"})");
  EXPECT_EQ(p.topic, "orders.created");
  EXPECT_EQ(p.reply, "_INBOX.a.1");
  EXPECT_EQ(p.headers, R"({"trace":"abc","k":"v"})");
  EXPECT_EQ(p.data, R"({"order":42,"total":9.5})");
  EXPECT_EQ(frame_.id.type, request_id::kind::string);
  EXPECT_EQ(frame_.id.text, "req-1");
  EXPECT_EQ(frame_.id.raw, R"("req-1")");
  // No escapes: every view points into the body.
  EXPECT_TRUE(inside_body(p.topic));
  EXPECT_TRUE(inside_body(p.reply));
  EXPECT_TRUE(inside_body(p.headers));
  EXPECT_TRUE(inside_body(p.data));
  EXPECT_TRUE(inside_body(frame_.id.text));

  const auto& minimal = pub(R"({"op":"pub","topic":"a","data":1})");
  EXPECT_EQ(minimal.topic, "a");
  EXPECT_EQ(minimal.data, "1");
  EXPECT_TRUE(minimal.reply.empty());
  EXPECT_TRUE(minimal.headers.empty());

  // Field order carries no meaning.
  const auto& reordered = pub(R"({"data":[1],"id":3,"topic":"x.y","op":"pub","reply":"r"})");
  EXPECT_EQ(reordered.topic, "x.y");
  EXPECT_EQ(reordered.data, "[1]");
  EXPECT_EQ(reordered.reply, "r");
  EXPECT_EQ(frame_.id.integer, 3);

  // A reserved topic is the server's business (permission_denied), not the parser's.
  EXPECT_EQ(pub(R"({"op":"pub","topic":"$SYS.x","data":1})").topic, "$SYS.x");
  // `reply` may be a `$` topic.
  EXPECT_EQ(pub(R"({"op":"pub","topic":"a","reply":"$SYS.r","data":1})").reply, "$SYS.r");
}

TEST_F(ClientParserTest, Sub) {
  const auto& s = ok_as<sub_message>(
      R"({"op":"sub","sid":1,"topic":"orders.*","queue":"workers","id":1})", op::sub);
  EXPECT_EQ(s.sid, 1U);
  EXPECT_EQ(s.topic, "orders.*");
  EXPECT_EQ(s.queue, "workers");

  const auto& plain =
      ok_as<sub_message>(R"({"op":"sub","sid":9007199254740991,"topic":">"})", op::sub);
  EXPECT_EQ(plain.sid, max_safe_integer);
  EXPECT_EQ(plain.topic, ">");
  EXPECT_TRUE(plain.queue.empty());

  const auto& null_queue =
      ok_as<sub_message>(R"({"op":"sub","sid":2,"topic":"a.b","queue":null})", op::sub);
  EXPECT_TRUE(null_queue.queue.empty());

  // Queue format: 1..64 printable ASCII without spaces.
  const std::string queue64(64, 'q');
  EXPECT_EQ(
      ok_as<sub_message>(R"({"op":"sub","sid":3,"topic":"a","queue":")" + queue64 + "\"}", op::sub)
          .queue,
      queue64);
  EXPECT_EQ(
      ok_as<sub_message>(R"({"op":"sub","sid":3,"topic":"a","queue":"a.*>$~!"})", op::sub).queue,
      "a.*>$~!");
  EXPECT_EQ(ok_as<sub_message>(R"({"op":"sub","sid":4,"topic":"$SYS.>"})", op::sub).topic,
            "$SYS.>");
}

TEST_F(ClientParserTest, Unsub) {
  const auto& now = ok_as<unsub_message>(R"({"op":"unsub","sid":7})", op::unsub);
  EXPECT_EQ(now.sid, 7U);
  EXPECT_EQ(now.max, 0U);

  const auto& later = ok_as<unsub_message>(R"({"op":"unsub","sid":7,"max":5,"id":2})", op::unsub);
  EXPECT_EQ(later.max, 5U);

  const auto& biggest = ok_as<unsub_message>(
      R"({"op":"unsub","sid":9007199254740991,"max":9007199254740991})", op::unsub);
  EXPECT_EQ(biggest.sid, max_safe_integer);
  EXPECT_EQ(biggest.max, max_safe_integer);

  EXPECT_EQ(ok_as<unsub_message>(R"({"op":"unsub","sid":1,"max":null})", op::unsub).max, 0U);
}

TEST_F(ClientParserTest, PingAndPong) {
  EXPECT_EQ(ok(R"({"op":"ping"})").kind, op::ping);
  EXPECT_TRUE(std::holds_alternative<ping_message>(frame_.body));
  EXPECT_FALSE(frame_.id.present());
  EXPECT_EQ(ok(R"({"op":"ping","id":42})").kind, op::ping);
  EXPECT_EQ(frame_.id.raw, "42");
  EXPECT_EQ(ok(R"({"op":"pong"})").kind, op::pong);
  EXPECT_TRUE(std::holds_alternative<pong_message>(frame_.body));
  EXPECT_EQ(ok(R"({"op":"pong","id":"p"})").kind, op::pong);
  EXPECT_EQ(frame_.id.raw, R"("p")");
}

// ---------------------------------------------------------------------------------------
// Section 1: names, repeats, unknown fields, nulls.

TEST_F(ClientParserTest, MemberNamesAreComparedAfterUnescaping) {
  EXPECT_EQ(ok(R"({"\u006fp":"ping"})").kind, op::ping);
  EXPECT_EQ(ok(R"({"op":"p\u0069ng"})").kind, op::ping);
  const auto& p = pub(R"({"op":"pub","\u0074opic":"a","d\u0061ta":1,"\u0072eply":"r"})");
  EXPECT_EQ(p.topic, "a");
  EXPECT_EQ(p.data, "1");
  EXPECT_EQ(p.reply, "r");
  EXPECT_EQ(ok(R"({"op":"ping","\u0069\u0064":5})").id.integer, 5);
}

TEST_F(ClientParserTest, UnknownFieldsAreIgnored) {
  EXPECT_EQ(ok(R"({"op":"ping","future":{"x":[1,2,{"op":"no"}]},"retain":true,"Op":"pub"})").kind,
            op::ping);
  const auto& p = pub(R"({"op":"pub","topic":"a","data":2,"sid":"not a number","queue":1})");
  EXPECT_EQ(p.data, "2");
  // More than 16 members, all different: the registry switches to its large mode.
  EXPECT_EQ(ok(many_members(40, R"("op":"ping","id":9})")).id.integer, 9);
}

TEST_F(ClientParserTest, NullOptionalFieldsAreAbsent) {
  const auto& p = pub(R"({"op":"pub","topic":"a","data":1,"reply":null,"headers":null,"id":null})");
  EXPECT_TRUE(p.reply.empty());
  EXPECT_TRUE(p.headers.empty());
  EXPECT_FALSE(frame_.id.present());
}

TEST_F(ClientParserTest, DataNullIsDelivered) {
  const auto& p = pub(R"({"op":"pub","topic":"a","data":null})");
  EXPECT_EQ(p.data, "null");
  EXPECT_TRUE(inside_body(p.data));
}

TEST_F(ClientParserTest, DataIsForwardedByteForByte) {
  const std::vector<std::string> values = {
      "1e3",
      "-0.0",
      "1.0",
      "12345678901234567890123456789",
      "1E+3",
      "1e400",
      repeat("9", 400),
      R"("a\u0041\n\"\\")",
      R"("\ud83d\ude00")",
      "\"h\xC3\xA9llo\"",
      "true",
      "false",
      "{}",
      "[]",
      R"("")",
      "[ 1 ,\t2 ,\n3 ]",
      R"({ "a" : [ 1 , { "b" : null } ] , "a" : 2 })",  // repeats inside data are not looked at
      "[" + nested_arrays(125) + "]",                   // levels 2..127
  };
  for (const auto& value : values) {
    SCOPED_TRACE(value);
    const auto& p = pub(R"({"op":"pub","topic":"t","data":)" + value + "}");
    EXPECT_EQ(p.data, value);
    EXPECT_TRUE(inside_body(p.data));
    // Whitespace around the value is not part of it.
    const auto& spaced = pub("{\"op\":\"pub\",\"topic\":\"t\",\"data\" : \n" + value + " \t}");
    EXPECT_EQ(spaced.data, value);
  }
}

TEST_F(ClientParserTest, Headers) {
  EXPECT_EQ(pub(R"({"op":"pub","topic":"a","data":1,"headers":{}})").headers, "{}");
  EXPECT_EQ(pub(R"({"op":"pub","topic":"a","data":1,"headers":{ }})").headers, "{ }");
  EXPECT_EQ(pub(R"({"op":"pub","topic":"a","data":1,"headers":{ "a" : "1" , "b":"" }})").headers,
            R"({ "a" : "1" , "b":"" })");
  EXPECT_EQ(
      pub(R"({"op":"pub","topic":"a","data":1,"headers":{"A":"1","a":"2","\u00e9":"\n"}})").headers,
      R"({"A":"1","a":"2","\u00e9":"\n"})");
  // Many headers: only max_frame bounds them.
  std::string many = "{";
  for (int i = 0; i < 100; ++i)
    many += (i == 0 ? "\"h" : ",\"h") + std::to_string(i) + "\":\"v\"";
  many += "}";
  EXPECT_EQ(pub(R"({"op":"pub","topic":"a","data":1,"headers":)" + many + "}").headers, many);
}

TEST_F(ClientParserTest, IdForms) {
  struct id_case {
    std::string raw;
    request_id::kind type;
    std::int64_t integer;
    std::string text;
  };
  const std::vector<id_case> cases = {
      {"0", request_id::kind::integer, 0, ""},
      {"-0", request_id::kind::integer, 0, ""},
      {"1", request_id::kind::integer, 1, ""},
      {"-1", request_id::kind::integer, -1, ""},
      {std::string(max_id), request_id::kind::integer, 9007199254740991, ""},
      {"-" + std::string(max_id), request_id::kind::integer, -9007199254740991, ""},
      {R"("")", request_id::kind::string, 0, ""},
      {R"("abc")", request_id::kind::string, 0, "abc"},
      {R"("a\u0041\n")", request_id::kind::string, 0, "aA\n"},
      {"\"" + std::string(64, 'x') + "\"", request_id::kind::string, 0, std::string(64, 'x')},
      // 64 bytes once decoded, though longer as written.
      {"\"" + repeat("\\u0041", 64) + "\"", request_id::kind::string, 0, std::string(64, 'A')},
      {"\"" + repeat("\xC3\xA9", 32) + "\"", request_id::kind::string, 0, repeat("\xC3\xA9", 32)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.raw);
    const auto& frame = ok(R"({"op":"ping","id":)" + c.raw + "}");
    EXPECT_TRUE(frame.id.present());
    EXPECT_EQ(frame.id.type, c.type);
    EXPECT_EQ(frame.id.raw, c.raw);  // echoed verbatim
    if (c.type == request_id::kind::integer) {
      EXPECT_EQ(frame.id.integer, c.integer);
    }
    if (c.type == request_id::kind::string) {
      EXPECT_EQ(frame.id.text, c.text);
    }
  }
}

TEST_F(ClientParserTest, StringsWithEscapesAreDecoded) {
  const auto& p = pub(R"({"op":"pub","topic":"a\u002eb","reply":"r\"q","data":"\u0041"})");
  EXPECT_EQ(p.topic, "a.b");
  EXPECT_EQ(p.reply, "r\"q");
  EXPECT_EQ(p.data, R"("\u0041")");  // data stays as written
  const auto& s =
      ok_as<sub_message>(R"({"op":"sub","sid":1,"topic":"\u003e","queue":"q\/1"})", op::sub);
  EXPECT_EQ(s.topic, ">");
  EXPECT_EQ(s.queue, "q/1");
}

TEST_F(ClientParserTest, StateDoesNotLeakBetweenFrames) {
  const auto& first =
      pub(R"({"op":"pub","topic":"a\u002eb","reply":"r","headers":{"h":"v"},"data":1,"id":1})");
  EXPECT_EQ(first.reply, "r");
  const auto& second = pub(R"({"op":"pub","topic":"c","data":2})");
  EXPECT_EQ(second.topic, "c");
  EXPECT_TRUE(second.reply.empty());
  EXPECT_TRUE(second.headers.empty());
  EXPECT_FALSE(frame_.id.present());
  // A large frame of unique names, then a small one reusing a name seen before.
  ok(many_members(30, R"("op":"ping"})"));
  EXPECT_EQ(ok(R"({"m3":1,"op":"ping"})").kind, op::ping);
  // Header names of one frame do not count as repeats in the next.
  pub(R"({"op":"pub","topic":"a","data":1,"headers":{"x":"1"}})");
  EXPECT_EQ(pub(R"({"op":"pub","topic":"a","data":1,"headers":{"x":"2"}})").headers,
            R"({"x":"2"})");
}

// ---------------------------------------------------------------------------------------
// Errors (section 8) and whether they carry the id (sections 1 and 3).

TEST(ClientParserErrorTest, BadJson) {
  std::string too_deep = R"({"id":1,"op":"pub","topic":"t","data":)" + nested_arrays(128) + "}";
  expect_client_errors({
      {"", error_code::bad_json, {}, false},
      {"   ", error_code::bad_json, {}, false},
      {"[]", error_code::bad_json, {}, false},
      {R"("op")", error_code::bad_json, {}, false},
      {"null", error_code::bad_json, {}, false},
      {R"([{"op":"ping","id":1}])", error_code::bad_json, {}, false},
      {R"({"op":"ping")", error_code::bad_json, {}, false},
      {R"({"op":"ping","id":1,})", error_code::bad_json, {}, false},
      {R"({"op":"ping","id":1}})", error_code::bad_json, {}, false},
      {R"({"op":"ping","id":1} x)", error_code::bad_json, {}, false},
      {R"({"id":5,"op":"ping","x":[1,]})", error_code::bad_json, {}, false},
      {"\xEF\xBB\xBF{\"op\":\"ping\",\"id\":1}", error_code::bad_json, {}, false},
      {"{\"op\":\"pub\",\"id\":1,\"topic\":\"t\",\"data\":\"\xC0\x80\"}",
       error_code::bad_json,
       {},
       false},
      {R"({"op":"pub","id":1,"topic":"t","data":"\ud800"})", error_code::bad_json, {}, false},
      {"{\"op\":\"ping\",\"id\":1,\"x\":\"a\x01\"}", error_code::bad_json, {}, false},
      {"{\"op\":\"ping\",\f\"id\":1}", error_code::bad_json, {}, false},
      {too_deep, error_code::bad_json, {}, false},
      {R"({'op':'ping'})", error_code::bad_json, {}, false},
      // No string `op`: the id, when valid, is carried.
      {"{}", error_code::bad_json},
      {" { } ", error_code::bad_json},
      {R"({"id":7})", error_code::bad_json, "7"},
      {R"({"id":"abc","op":null})", error_code::bad_json, R"("abc")"},
      {R"({"op":1,"id":7})", error_code::bad_json, "7"},
      {R"({"op":["pub"],"id":7})", error_code::bad_json, "7"},
      {R"({"op":{"name":"pub"},"id":-3})", error_code::bad_json, "-3"},
      {R"({"op":true})", error_code::bad_json},
      {R"({"id":1.5})", error_code::bad_json, {}, false},  // no op and an invalid id
      {R"({"id":null})", error_code::bad_json},
      {R"({"Op":"ping","id":1})", error_code::bad_json, "1"},
  });
}

TEST(ClientParserErrorTest, RepeatedTopLevelNamesAreBadJsonWithoutId) {
  expect_client_errors({
      {R"({"op":"ping","id":1,"op":"ping"})", error_code::bad_json, {}, false},
      {R"({"id":1,"op":"ping","id":1})", error_code::bad_json, {}, false},
      {R"({"id":1,"op":"ping","id":2})", error_code::bad_json, {}, false},
      {R"({"op":"ping","\u006fp":"ping","id":1})", error_code::bad_json, {}, false},
      {R"({"\u006fp":"ping","op":"ping","id":1})", error_code::bad_json, {}, false},
      {R"({"\u006f\u0070":"ping","o\u0070":"ping"})", error_code::bad_json, {}, false},
      {R"({"op":"ping","x":1,"x":2,"id":1})", error_code::bad_json, {}, false},  // unknown too
      {R"({"op":"ping","":1,"":2})", error_code::bad_json, {}, false},
      {R"({"op":"pub","topic":"a","data":1,"data":2,"id":1})", error_code::bad_json, {}, false},
      {R"({"op":"pub","topic":"a","data":null,"data":null})", error_code::bad_json, {}, false},
      // Many members with the repeat at the end (past the linear-scan limit).
      {many_members(20, R"("op":"ping","id":1,"m3":0})"), error_code::bad_json, {}, false},
      {many_members(20, R"("op":"ping","id":1,"m19":0})"), error_code::bad_json, {}, false},
      {many_members(20, R"("op":"ping","id":1,"\u006d0":0})"), error_code::bad_json, {}, false},
      {many_members(15, R"("op":"ping","id":1,"m0":0})"), error_code::bad_json, {}, false},
      {many_members(16, R"("op":"ping","id":1,"m15":0})"), error_code::bad_json, {}, false},
      {many_members(200, R"("op":"ping","id":1,"m150":0})"), error_code::bad_json, {}, false},
  });
}

TEST(ClientParserErrorTest, UnknownOp) {
  expect_client_errors({
      {R"({"op":"ack","id":1})", error_code::unknown_op, "1"},
      {R"({"op":"nack","id":"n"})", error_code::unknown_op, R"("n")"},
      {R"({"op":"PUB"})", error_code::unknown_op},
      {R"({"op":"pub "})", error_code::unknown_op},
      {R"({"op":""})", error_code::unknown_op},
      {R"({"op":"msg","id":2})", error_code::unknown_op, "2"},  // a server op
      {R"({"op":"info"})", error_code::unknown_op},
      {R"({"op":"ok"})", error_code::unknown_op},
      {R"({"op":"err"})", error_code::unknown_op},
      // With an invalid id: unknown_op still, but without the id.
      {R"({"op":"ack","id":1.0})", error_code::unknown_op, {}, false},
      {R"({"op":"ack","id":)" + std::string(too_big) + "}", error_code::unknown_op, {}, false},
      {R"({"op":"ack","id":")" + std::string(65, 'x') + "\"}", error_code::unknown_op, {}, false},
      {R"({"op":"ack","id":[1]})", error_code::unknown_op, {}, false},
      // unknown_op before bad_request and invalid_topic.
      {R"({"op":"ack","topic":"*","sid":0,"id":3})", error_code::unknown_op, "3"},
  });
}

TEST(ClientParserErrorTest, InvalidIdIsBadRequestWithoutId) {
  std::vector<error_case> cases;
  const std::vector<std::string> ids = {
      "1.0",
      "1e2",
      "1E0",
      "-1.5",
      std::string(too_big),
      "-" + std::string(too_big),
      "18446744073709551616",
      "123456789012345678901234567890",
      "true",
      "false",
      "[1]",
      "{}",
      "{\"id\":1}",
      "\"" + std::string(65, 'x') + "\"",
      "\"" + repeat("\\u0041", 65) + "\"",   // 65 bytes once decoded
      "\"" + repeat("\xC3\xA9", 33) + "\"",  // 66 bytes
  };
  for (const auto& id : ids) {
    for (const std::string& frame : {R"({"op":"ping","id":)" + id + "}",
                                     R"({"op":"pub","topic":"a","data":1,"id":)" + id + "}",
                                     // bad_request before invalid_topic
                                     R"({"op":"pub","topic":"a.*","data":1,"id":)" + id + "}",
                                     R"({"op":"sub","sid":1,"topic":"a..b","id":)" + id + "}"}) {
      cases.push_back({frame, error_code::bad_request, {}, false});
    }
  }
  expect_client_errors(cases);
}

TEST(ClientParserErrorTest, PubBadRequest) {
  expect_client_errors({
      {R"({"op":"pub","data":1,"id":1})", error_code::bad_request, "1"},
      {R"({"op":"pub","topic":null,"data":1,"id":1})", error_code::bad_request, "1"},
      {R"({"op":"pub","topic":1,"data":1,"id":1})", error_code::bad_request, "1"},
      {R"({"op":"pub","topic":["a"],"data":1,"id":1})", error_code::bad_request, "1"},
      {R"({"op":"pub","topic":"a","id":1})", error_code::bad_request, "1"},
      {R"({"op":"pub","topic":"a","reply":1,"data":1,"id":"x"})", error_code::bad_request,
       R"("x")"},
      {R"({"op":"pub","topic":"a","reply":{},"data":1})", error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":[]})", error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":"k:v"})", error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":1})", error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":{"a":1}})", error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":{"a":null}})", error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":{"a":true}})", error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":{"a":{"b":"c"}}})", error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":{"a":["b"]}})", error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":{"":"x"}})", error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":{"a":"1","a":"2"}})", error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":{"a":"1","\u0061":"2"}})",
       error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":{"b":"1","a":"","b":""}})",
       error_code::bad_request},
      {R"({"op":"pub","topic":"a","data":1,"headers":{"a":"1","b":2}})", error_code::bad_request},
      // bad_request before invalid_topic.
      {R"({"op":"pub","topic":"a.*","data":1,"headers":[],"id":1})", error_code::bad_request, "1"},
      {R"({"op":"pub","topic":"","id":1})", error_code::bad_request, "1"},
      {R"({"op":"pub","topic":"a.>","reply":5,"data":1})", error_code::bad_request},
  });
}

TEST(ClientParserErrorTest, PubInvalidTopic) {
  const std::string long_topic(257, 'a');
  expect_client_errors({
      {R"({"op":"pub","topic":"a.*","data":1,"id":1})", error_code::invalid_topic, "1"},
      {R"({"op":"pub","topic":"a.>","data":1,"id":1})", error_code::invalid_topic, "1"},
      {R"({"op":"pub","topic":">","data":1})", error_code::invalid_topic},
      {R"({"op":"pub","topic":"*","data":1})", error_code::invalid_topic},
      {R"({"op":"pub","topic":"","data":1})", error_code::invalid_topic},
      {R"({"op":"pub","topic":")" + long_topic + R"(","data":1})", error_code::invalid_topic},
      {R"({"op":"pub","topic":"a..b","data":1})", error_code::invalid_topic},
      {R"({"op":"pub","topic":".a","data":1})", error_code::invalid_topic},
      {R"({"op":"pub","topic":"a.","data":1})", error_code::invalid_topic},
      {R"({"op":"pub","topic":"a b","data":1})", error_code::invalid_topic},
      {R"({"op":"pub","topic":"a\u0020b","data":1})", error_code::invalid_topic},
      {R"({"op":"pub","topic":"a\u0000","data":1})", error_code::invalid_topic},
      {"{\"op\":\"pub\",\"topic\":\"caf\xC3\xA9\",\"data\":1}", error_code::invalid_topic},
      {R"({"op":"pub","topic":"a*","data":1})", error_code::invalid_topic},
      {R"({"op":"pub","topic":"a","reply":"b.*","data":1,"id":"r"})", error_code::invalid_topic,
       R"("r")"},
      {R"({"op":"pub","topic":"a","reply":"","data":1})", error_code::invalid_topic},
      {R"({"op":"pub","topic":"a","reply":"x..y","data":1})", error_code::invalid_topic},
  });
  // 256 bytes is fine.
  client_parser parser;
  client_frame frame;
  EXPECT_TRUE(
      parser.parse(R"({"op":"pub","topic":")" + std::string(256, 'a') + R"(","data":1})", frame));
}

TEST(ClientParserErrorTest, SubErrors) {
  std::vector<error_case> cases;
  const std::vector<std::string> sids = {"0",
                                         "-1",
                                         "-0",
                                         "1.0",
                                         "1e0",
                                         "1E2",
                                         "\"1\"",
                                         "null",
                                         "true",
                                         "[1]",
                                         std::string(too_big),
                                         "18446744073709551616",
                                         "99999999999999999999999"};
  for (const auto& sid : sids) {
    cases.push_back(
        {R"({"op":"sub","sid":)" + sid + R"(,"topic":"a","id":1})", error_code::bad_request, "1"});
    // bad_request (sid) before invalid_topic.
    cases.push_back({R"({"op":"sub","sid":)" + sid + R"(,"topic":"a.>.c","id":1})",
                     error_code::bad_request, "1"});
  }
  const std::vector<error_case> more = {
      {R"({"op":"sub","topic":"a","id":1})", error_code::bad_request, "1"},
      {R"({"op":"sub","sid":1,"id":1})", error_code::bad_request, "1"},
      {R"({"op":"sub","sid":1,"topic":null})", error_code::bad_request},
      {R"({"op":"sub","sid":1,"topic":5})", error_code::bad_request},
      {R"({"op":"sub","sid":1,"topic":"a","queue":""})", error_code::bad_request},
      {R"({"op":"sub","sid":1,"topic":"a","queue":"a b"})", error_code::bad_request},
      {R"({"op":"sub","sid":1,"topic":"a","queue":"tab\t"})", error_code::bad_request},
      {"{\"op\":\"sub\",\"sid\":1,\"topic\":\"a\",\"queue\":\"\xC3\xA9\"}",
       error_code::bad_request},
      {R"({"op":"sub","sid":1,"topic":"a","queue":")" + std::string(65, 'q') + "\"}",
       error_code::bad_request},
      {R"({"op":"sub","sid":1,"topic":"a","queue":5})", error_code::bad_request},
      {R"({"op":"sub","sid":1,"topic":"a","queue":["q"]})", error_code::bad_request},
      // bad queue before invalid_topic.
      {R"({"op":"sub","sid":1,"topic":"a*","queue":"a b","id":1})", error_code::bad_request, "1"},
      // invalid_topic.
      {R"({"op":"sub","sid":1,"topic":"a.>.c","id":1})", error_code::invalid_topic, "1"},
      {R"({"op":"sub","sid":1,"topic":"a*"})", error_code::invalid_topic},
      {R"({"op":"sub","sid":1,"topic":"*b"})", error_code::invalid_topic},
      {R"({"op":"sub","sid":1,"topic":""})", error_code::invalid_topic},
      {R"({"op":"sub","sid":1,"topic":"a..b"})", error_code::invalid_topic},
      {R"({"op":"sub","sid":1,"topic":")" + std::string(257, 'a') + "\"}",
       error_code::invalid_topic},
  };
  cases.insert(cases.end(), more.begin(), more.end());
  expect_client_errors(cases);
}

TEST(ClientParserErrorTest, SubInvalidTopicFillsInTheSid) {
  client_parser parser;
  for (const auto& [body, sid] : std::vector<std::pair<std::string, std::uint64_t>>{
           {R"({"op":"sub","sid":17,"topic":"a.>.c","id":1})", 17},
           {R"({"op":"sub","sid":9007199254740991,"topic":""})", max_safe_integer},
           {R"({"op":"sub","topic":"**","sid":3,"queue":"q"})", 3},
       }) {
    SCOPED_TRACE(body);
    client_frame frame;
    const auto r = parser.parse(body, frame);
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.error.code, error_code::invalid_topic);
    EXPECT_EQ(frame.kind, op::sub);
    const auto* sub = std::get_if<sub_message>(&frame.body);
    ASSERT_NE(sub, nullptr);
    EXPECT_EQ(sub->sid, sid);
  }
}

TEST(ClientParserErrorTest, UnsubErrors) {
  expect_client_errors({
      {R"({"op":"unsub","id":1})", error_code::bad_request, "1"},
      {R"({"op":"unsub","sid":0,"id":1})", error_code::bad_request, "1"},
      {R"({"op":"unsub","sid":-1})", error_code::bad_request},
      {R"({"op":"unsub","sid":1.0})", error_code::bad_request},
      {R"({"op":"unsub","sid":1e0})", error_code::bad_request},
      {R"({"op":"unsub","sid":"1"})", error_code::bad_request},
      {R"({"op":"unsub","sid":null})", error_code::bad_request},
      {R"({"op":"unsub","sid":)" + std::string(too_big) + "}", error_code::bad_request},
      {R"({"op":"unsub","sid":1,"max":0,"id":1})", error_code::bad_request, "1"},
      {R"({"op":"unsub","sid":1,"max":-1})", error_code::bad_request},
      {R"({"op":"unsub","sid":1,"max":1.5})", error_code::bad_request},
      {R"({"op":"unsub","sid":1,"max":2.0})", error_code::bad_request},
      {R"({"op":"unsub","sid":1,"max":1e1})", error_code::bad_request},
      {R"({"op":"unsub","sid":1,"max":"1"})", error_code::bad_request},
      {R"({"op":"unsub","sid":1,"max":true})", error_code::bad_request},
      {R"({"op":"unsub","sid":1,"max":)" + std::string(too_big) + "}", error_code::bad_request},
  });
}

TEST(ClientParserErrorTest, ConnectErrors) {
  expect_client_errors({
      {R"({"op":"connect","proto":2,"id":1})", error_code::bad_request, "1"},
      {R"({"op":"connect","proto":0})", error_code::bad_request},
      {R"({"op":"connect","proto":-1})", error_code::bad_request},
      {R"({"op":"connect","proto":1.0})", error_code::bad_request},
      {R"({"op":"connect","proto":"1"})", error_code::bad_request},
      {R"({"op":"connect","proto":18446744073709551617})", error_code::bad_request},
      {R"({"op":"connect","name":5})", error_code::bad_request},
      {R"({"op":"connect","token":[]})", error_code::bad_request},
      {R"({"op":"connect","user":"u"})", error_code::bad_request},
      {R"({"op":"connect","pass":"p"})", error_code::bad_request},
      {R"({"op":"connect","user":"u","pass":null})", error_code::bad_request},
      {R"({"op":"connect","user":null,"pass":"p"})", error_code::bad_request},
      {R"({"op":"connect","user":"u","pass":1})", error_code::bad_request},
      {R"({"op":"connect","user":1,"pass":"p"})", error_code::bad_request},
      {R"({"op":"connect","echo":"true"})", error_code::bad_request},
      {R"({"op":"connect","echo":1})", error_code::bad_request},
      {R"({"op":"connect","echo":0,"id":"c"})", error_code::bad_request, R"("c")"},
  });
}

// Section 3: the first fault in the order bad_json, unknown_op, bad_request, invalid_topic.
TEST(ClientParserErrorTest, Precedence) {
  expect_client_errors({
      // bad_json beats everything, and then no id.
      {R"({"op":"ack","id":1,"topic":"*","op":"ack"})", error_code::bad_json, {}, false},
      {R"({"op":"pub","topic":"*","id":1,"data":[1,]})", error_code::bad_json, {}, false},
      // unknown_op beats bad_request (even an invalid id) and invalid_topic.
      {R"({"op":"ack","id":1.5,"topic":"*"})", error_code::unknown_op, {}, false},
      // bad_request beats invalid_topic.
      {R"({"op":"pub","topic":"*","id":1})", error_code::bad_request, "1"},
      {R"({"op":"pub","topic":"*","data":1,"reply":false,"id":1})", error_code::bad_request, "1"},
      {R"({"op":"sub","topic":"a.>.c","sid":0,"id":1})", error_code::bad_request, "1"},
      {R"({"op":"pub","topic":"*","data":1,"id":{}})", error_code::bad_request, {}, false},
      // invalid_topic last.
      {R"({"op":"pub","topic":"*","data":1,"id":1})", error_code::invalid_topic, "1"},
  });
}

// ---------------------------------------------------------------------------------------
// server_parser: the client's side.

class ServerParserTest : public testing::Test {
 protected:
  const server_frame& ok(std::string body) {
    body_ = std::move(body);
    frame_ = {};
    const auto r = parser_.parse(body_, frame_);
    EXPECT_TRUE(r.ok) << body_ << ": " << wire_name(r.error.code) << ": " << r.error.message;
    return frame_;
  }
  template <typename T>
  const T& ok_as(std::string body, op kind) {
    const auto& frame = ok(std::move(body));
    EXPECT_EQ(frame.kind, kind);
    static const T empty{};
    const T* message = std::get_if<T>(&frame.body);
    EXPECT_NE(message, nullptr) << body_;
    return message != nullptr ? *message : empty;
  }

  server_parser parser_;
  server_frame frame_;
  std::string body_;
};

TEST_F(ServerParserTest, Info) {
  const auto& info = ok_as<info_message>(
      R"({"op":"info","server":"tidingsd","version":"0.1.0","proto":1,"max_frame":1048576,"max_pending":67108864,"write_deadline_ms":10000,"auth_required":true,"client_id":7,"ping_interval_ms":30000})",
      op::info);
  EXPECT_EQ(info.server, "tidingsd");
  EXPECT_EQ(info.version, "0.1.0");
  EXPECT_EQ(info.proto, 1);
  EXPECT_EQ(info.max_frame, 1048576U);
  EXPECT_EQ(info.max_pending, 67108864U);
  EXPECT_EQ(info.write_deadline_ms, 10000U);
  EXPECT_TRUE(info.auth_required);
  EXPECT_EQ(info.client_id, 7U);
  EXPECT_EQ(info.ping_interval_ms, 30000U);

  // Unknown fields ignored (a later server may add some); missing ones default.
  const auto& sparse = ok_as<info_message>(
      R"({"op":"info","future":[1],"client_id":18446744073709551615})", op::info);
  EXPECT_EQ(sparse.proto, 1);
  EXPECT_EQ(sparse.client_id, UINT64_MAX);
  EXPECT_FALSE(sparse.auth_required);
  EXPECT_TRUE(sparse.server.empty());
}

TEST_F(ServerParserTest, Msg) {
  const auto& msg = ok_as<msg_message>(
      R"({"op":"msg","sid":1,"topic":"orders.created","reply":"_INBOX.x","headers":{"k":"v"},"data":{"order":42}})",
      op::msg);
  EXPECT_EQ(msg.sid, 1U);
  EXPECT_EQ(msg.topic, "orders.created");
  EXPECT_EQ(msg.reply, "_INBOX.x");
  EXPECT_EQ(msg.headers, R"({"k":"v"})");
  EXPECT_EQ(msg.data, R"({"order":42})");

  const auto& bare = ok_as<msg_message>(
      R"({"op":"msg","sid":9007199254740991,"topic":"a\"b","data":null})", op::msg);
  EXPECT_EQ(bare.sid, max_safe_integer);
  EXPECT_EQ(bare.topic, "a\"b");
  EXPECT_EQ(bare.data, "null");
  EXPECT_TRUE(bare.reply.empty());
  EXPECT_TRUE(bare.headers.empty());

  EXPECT_EQ(
      ok_as<msg_message>(R"({"op":"msg","sid":2,"topic":"t","headers":{},"data":-0.0})", op::msg)
          .headers,
      "{}");
}

TEST_F(ServerParserTest, OkErrPingPong) {
  EXPECT_EQ(ok(R"({"op":"ok","id":1})").kind, op::ok);
  EXPECT_EQ(frame_.id.integer, 1);
  EXPECT_TRUE(std::holds_alternative<ok_message>(frame_.body));
  EXPECT_EQ(ok(R"({"op":"ok","id":"abc"})").id.text, "abc");

  const auto& err = ok_as<err_message>(
      R"({"op":"err","code":"no_responders","message":"nobody","id":"r1","topic":"_INBOX.q"})",
      op::err);
  EXPECT_EQ(err.code, "no_responders");
  EXPECT_EQ(err.message, "nobody");
  EXPECT_EQ(err.topic, "_INBOX.q");
  EXPECT_EQ(frame_.id.raw, R"("r1")");

  const auto& unknown =
      ok_as<err_message>(R"({"op":"err","code":"a_future_code","message":"\u00e9"})", op::err);
  EXPECT_EQ(unknown.code, "a_future_code");  // kept as text: clients may not know it yet
  EXPECT_EQ(unknown.message, "\xC3\xA9");
  EXPECT_TRUE(unknown.topic.empty());
  EXPECT_FALSE(frame_.id.present());

  EXPECT_EQ(ok(R"({"op":"ping"})").kind, op::ping);
  EXPECT_EQ(ok(R"({"op":"ping","id":3})").id.integer, 3);
  EXPECT_EQ(ok(R"({"op":"pong","id":-9007199254740991})").kind, op::pong);
  EXPECT_EQ(frame_.id.integer, -9007199254740991);
}

TEST(ServerParserErrorTest, Errors) {
  expect_server_errors({
      // bad_json.
      {"[]", error_code::bad_json, {}, false},
      {R"({"op":"ok","id":1,"id":1})", error_code::bad_json, {}, false},
      {R"({"id":1})", error_code::bad_json, "1"},
      {"\xEF\xBB\xBF{\"op\":\"ok\"}", error_code::bad_json, {}, false},
      // unknown_op: client ops are not server ops.
      {R"({"op":"pub","id":1})", error_code::unknown_op, "1"},
      {R"({"op":"sub"})", error_code::unknown_op},
      {R"({"op":"connect"})", error_code::unknown_op},
      {R"({"op":"ack","id":1.5})", error_code::unknown_op, {}, false},
      // bad_request.
      {R"({"op":"ok","id":1.5})", error_code::bad_request, {}, false},
      {R"({"op":"ok","id":")" + std::string(65, 'x') + "\"}", error_code::bad_request, {}, false},
      {R"({"op":"msg","topic":"a","data":1})", error_code::bad_request},
      {R"({"op":"msg","sid":"1","topic":"a","data":1})", error_code::bad_request},
      {R"({"op":"msg","sid":-1,"topic":"a","data":1})", error_code::bad_request},
      {R"({"op":"msg","sid":1.0,"topic":"a","data":1})", error_code::bad_request},
      {R"({"op":"msg","sid":9007199254740992,"topic":"a","data":1})", error_code::bad_request},
      {R"({"op":"msg","sid":1,"data":1})", error_code::bad_request},
      {R"({"op":"msg","sid":1,"topic":1,"data":1})", error_code::bad_request},
      {R"({"op":"msg","sid":1,"topic":"a"})", error_code::bad_request},
      {R"({"op":"msg","sid":1,"topic":"a","data":1,"reply":2})", error_code::bad_request},
      {R"({"op":"msg","sid":1,"topic":"a","data":1,"headers":[]})", error_code::bad_request},
      {R"({"op":"msg","sid":1,"topic":"a","data":1,"headers":{"a":1}})", error_code::bad_request},
      {R"({"op":"msg","sid":1,"topic":"a","data":1,"headers":{"":"v"}})", error_code::bad_request},
      {R"({"op":"msg","sid":1,"topic":"a","data":1,"headers":{"a":"1","\u0061":"2"}})",
       error_code::bad_request},
      {R"({"op":"err","message":"m","id":4})", error_code::bad_request, "4"},
      {R"({"op":"err","code":null})", error_code::bad_request},
      {R"({"op":"err","code":5})", error_code::bad_request},
      {R"({"op":"err","code":"bad_json","message":5})", error_code::bad_request},
      {R"({"op":"err","code":"bad_json","topic":[]})", error_code::bad_request},
      {R"({"op":"info","server":1})", error_code::bad_request},
      {R"({"op":"info","version":false})", error_code::bad_request},
      {R"({"op":"info","proto":"1"})", error_code::bad_request},
      {R"({"op":"info","max_frame":-1})", error_code::bad_request},
      {R"({"op":"info","max_pending":1.5})", error_code::bad_request},
      {R"({"op":"info","write_deadline_ms":1e4})", error_code::bad_request},
      {R"({"op":"info","client_id":18446744073709551616})", error_code::bad_request},
      {R"({"op":"info","ping_interval_ms":"30000"})", error_code::bad_request},
      {R"({"op":"info","auth_required":"yes"})", error_code::bad_request},
      {R"({"op":"info","auth_required":1})", error_code::bad_request},
      // info_message::proto is signed: a value it cannot hold is not silently wrapped.
      {R"({"op":"info","proto":18446744073709551615})", error_code::bad_request},
      {R"({"op":"info","proto":9223372036854775808})", error_code::bad_request},
  });
}

TEST_F(ServerParserTest, InfoProtoIsReadExactly) {
  EXPECT_EQ(ok_as<info_message>(R"({"op":"info","proto":2})", op::info).proto, 2);
  EXPECT_EQ(ok_as<info_message>(R"({"op":"info","proto":9223372036854775807})", op::info).proto,
            INT64_MAX);
}

}  // namespace
}  // namespace tidings::protocol
