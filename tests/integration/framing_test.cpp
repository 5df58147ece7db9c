// PROTOCOL.md section 1 (framing and the JSON rules every frame follows), over loopback.
// Length prefixes outside the allowed range close the connection: see limits_test.cpp.

#include "conformance.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tidings::test {
namespace {

// `depth` nested arrays around a number: `[[[1]]]` for 3.
std::string nested_arrays(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') + "1" +
         std::string(static_cast<std::size_t>(depth), ']');
}

TEST(Framing, ShortestFrameOfTwoBytesIsReadAsAFrame) {
  test_broker broker;
  auto client = open_client(broker);
  // `{}` is a well-framed object without `op`: bad_json, and the connection stays.
  EXPECT_TRUE(fails_without_id(client, "{}", "bad_json"));
  // Two spaces: well framed, not JSON.
  EXPECT_TRUE(fails_without_id(client, "  ", "bad_json"));
  EXPECT_TRUE(client.sync().empty());
}

TEST(Framing, FrameOfExactlyMaxFrameIsAcceptedAndDeliveredWithinTheAllowance) {
  broker::config settings = test_broker::default_settings();
  settings.max_frame = 4096;
  test_broker broker(settings);
  auto subscriber = open_client(broker);
  auto publisher = open_client(broker);
  subscribe(subscriber, 1, "big");

  const std::string head = R"({"op":"pub","topic":"big","id":1,"data":")";
  const std::string tail = "\"}";
  const std::string body = head + std::string(4096 - head.size() - tail.size(), 'x') + tail;
  ASSERT_EQ(body.size(), 4096U);
  EXPECT_TRUE(is_answer(request_raw(publisher, body), "ok", 1));

  const auto frame = subscriber.recv_frame();
  ASSERT_TRUE(frame.has_value());
  // Server frames may exceed max_frame by the msg envelope, at most 1024 bytes.
  EXPECT_LE(frame->size(), 4096U + 1024U);
  const auto msg = parse_raw_msg(*frame);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->data, "\"" + std::string(4096 - head.size() - tail.size(), 'x') + "\"");
  EXPECT_TRUE(subscriber.sync().empty());
}

TEST(Framing, DefaultMaxFrameOfOneMebibyteIsAccepted) {
  test_broker broker;
  auto subscriber = open_client(broker);
  auto publisher = open_client(broker);
  subscribe(subscriber, 7, "big.default");

  const std::string head = R"({"op":"pub","topic":"big.default","id":"m","data":")";
  const std::string tail = "\"}";
  const std::string payload(1048576 - head.size() - tail.size(), 'y');
  const std::string body = head + payload + tail;
  ASSERT_EQ(body.size(), 1048576U);
  EXPECT_TRUE(is_answer(request_raw(publisher, body), "ok", "m"));

  const auto frame = subscriber.recv_frame();
  ASSERT_TRUE(frame.has_value());
  EXPECT_LE(frame->size(), 1048576U + 1024U);
  const auto msg = parse_raw_msg(*frame);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->sid, 7U);
  EXPECT_EQ(msg->data, "\"" + payload + "\"");
}

TEST(Framing, FrameSentOneByteAtATimeIsReassembled) {
  test_broker broker;
  auto client = open_client(broker);
  const std::string bytes = framed(R"({"op":"ping","id":"split"})");
  for (const char c : bytes) {
    client.send_raw(std::string_view(&c, 1));
  }
  EXPECT_TRUE(is_answer(client.recv(), "pong", "split"));
}

TEST(Framing, FramesSplitAtEveryOffsetAreReassembled) {
  test_broker broker;
  auto client = open_client(broker);
  const std::string first = framed(R"({"op":"ping","id":1})");
  const std::string second = framed(R"({"op":"ping","id":2})");
  const std::string both = first + second;
  for (std::size_t cut = 1; cut < both.size(); ++cut) {
    client.send_raw(std::string_view(both).substr(0, cut));
    client.send_raw(std::string_view(both).substr(cut));
    EXPECT_TRUE(is_answer(client.recv(), "pong", 1)) << "cut at " << cut;
    EXPECT_TRUE(is_answer(client.recv(), "pong", 2)) << "cut at " << cut;
  }
}

TEST(Framing, ManyFramesInOneWriteAreAnsweredInOrder) {
  test_broker broker;
  auto client = open_client(broker);
  std::string batch;
  for (int i = 0; i < 200; ++i) {
    batch += framed(R"({"op":"ping","id":)" + std::to_string(i) + "}");
  }
  client.send_raw(batch);
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(is_answer(client.recv(), "pong", i));
  }
}

TEST(Framing, WhitespaceIsAllowedAroundEveryToken) {
  test_broker broker;
  auto subscriber = open_client(broker);
  auto client = open_client(broker);
  subscribe(subscriber, 1, "ws");
  EXPECT_TRUE(is_answer(request_raw(client, " \t\r\n{\n \"op\" : \"ping\" ,\r\n\t\"id\" :\t9 } \n"),
                        "pong", 9));
  EXPECT_TRUE(is_answer(
      request_raw(client,
                  "\n{ \"op\":\"pub\" , \"topic\" : \"ws\", \"data\" : [ 1 , 2 ] ,\"id\":3 }\n"),
      "ok", 3));
  const auto frames = subscriber.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0]["data"], json::parse("[1,2]"));
}

// Bodies that break RFC 8259 or section 1. None carries a valid id, so every answer is
// bad_json without id; a subscriber to every topic proves none of them was published.
TEST(Framing, InvalidBodiesAreBadJsonAndTheConnectionStays) {
  test_broker broker;
  auto watcher = open_client(broker);
  subscribe(watcher, 1, ">");
  auto client = open_client(broker);

  const std::vector<std::string> bodies = {
      "not json",
      R"({"op":"ping")",                        // truncated
      R"({"op":"ping",})",                      // trailing comma
      R"({'op':'ping'})",                       // single quotes
      R"({op:"ping"})",                         // bare name
      R"({"op":"ping"} x)",                     // trailing garbage
      R"({"op":"ping"}{"op":"ping"})",          // two objects
      R"({"op":"ping" /* comment */})",         // comment
      R"({"op":"pub","topic":"t","data":01})",  // leading zero
      R"({"op":"pub","topic":"t","data":NaN})",
      R"({"op":"pub","topic":"t","data":1.})",
      R"({"op":"pub","topic":"t","data":.5})",
      R"({"op":"pub","topic":"t","data":+1})",
      R"({"op":"pub","topic":"t","data":0x10})",
      R"({"op":"pub","topic":"t","data":True})",
      R"({"op":"pub","topic":"t","data":[1,]})",
      R"({"op":"pub","topic":"t","data":"\x"})",    // unknown escape
      R"({"op":"pub","topic":"t","data":"\u12"})",  // short \u escape
      "{\"op\":\"pub\",\"topic\":\"t\",\"data\":\"a\x01"
      "b\"}",                                                // raw control character
      "{\"op\":\"pub\",\"topic\":\"t\",\"data\":\"a\tb\"}",  // raw tab inside a string
      // Invalid UTF-8: a stray byte, an overlong '/', an encoded surrogate, a truncated
      // sequence, a code point above U+10FFFF, a lone continuation byte.
      "{\"op\":\"pub\",\"topic\":\"t\",\"data\":\"\xff\"}",
      "{\"op\":\"pub\",\"topic\":\"t\",\"data\":\"\xc0\xaf\"}",
      "{\"op\":\"pub\",\"topic\":\"t\",\"data\":\"\xed\xa0\x80\"}",
      "{\"op\":\"pub\",\"topic\":\"t\",\"data\":\"\xe2\x82\"}",
      "{\"op\":\"pub\",\"topic\":\"t\",\"data\":\"\xf4\x90\x80\x80\"}",
      "{\"op\":\"pub\",\"topic\":\"t\",\"data\":\"\x80\"}",
      "{\"\xff\":1,\"op\":\"ping\"}",  // invalid UTF-8 in a member name
      // A byte order mark before the object.
      "\xef\xbb\xbf{\"op\":\"ping\"}",
      "\xef\xbb\xbf{\"op\":\"ping\",\"id\":1}",
      // Not an object.
      "[]",
      R"([{"op":"ping","id":1}])",
      R"("ping")",
      "42",
      "null",
      "true",
      // No string `op`.
      R"({"id2":1})",
      R"({"op":1})",
      R"({"op":null})",
      R"({"op":["ping"]})",
      R"({"op":{"name":"ping"}})",
      R"({"op":true})",
      R"({"OP":"ping"})",
  };
  for (const auto& body : bodies) {
    EXPECT_TRUE(fails_without_id(client, body, "bad_json"));
  }
  EXPECT_TRUE(watcher.sync().empty()) << "an invalid frame was published";
}

TEST(Framing, BadJsonCarriesTheIdOnlyOfAnObjectWithAValidId) {
  test_broker broker;
  auto client = open_client(broker);
  EXPECT_TRUE(fails_with_id(client, R"({"id":5})", "bad_json", 5));
  EXPECT_TRUE(fails_with_id(client, R"({"op":1,"id":"x"})", "bad_json", "x"));
  EXPECT_TRUE(fails_with_id(client, R"({"op":null,"id":-7})", "bad_json", -7));
  EXPECT_TRUE(fails_with_id(client, R"({"id":"late","op":["pub"]})", "bad_json", "late"));
  // The id itself is invalid: answered without it.
  EXPECT_TRUE(fails_without_id(client, R"({"op":1,"id":1.5})", "bad_json"));
  EXPECT_TRUE(fails_without_id(client, R"({"op":1,"id":true})", "bad_json"));
  // Not valid JSON, so not an object with a valid id.
  EXPECT_TRUE(fails_without_id(client, R"({"id":7,"op":"ping",})", "bad_json"));
  EXPECT_TRUE(fails_without_id(client, R"({"id":8,"op":"ping")", "bad_json"));
}

TEST(Framing, RepeatedTopLevelNameIsBadJsonWithoutId) {
  test_broker broker;
  auto watcher = open_client(broker);
  subscribe(watcher, 1, ">");
  auto client = open_client(broker);
  EXPECT_TRUE(fails_without_id(client, R"({"op":"ping","id":1,"op":"ping"})", "bad_json"));
  EXPECT_TRUE(fails_without_id(client, R"({"op":"ping","id":2,"id":2})", "bad_json"));
  EXPECT_TRUE(fails_without_id(client, R"({"op":"ping","id":3,"x":1,"x":1})", "bad_json"));
  // Compared after unescaping: "\u006fp" is "op", "\u0069d" is "id".
  EXPECT_TRUE(fails_without_id(client, R"({"op":"ping","id":4,"\u006fp":"ping"})", "bad_json"));
  EXPECT_TRUE(fails_without_id(client, R"({"op":"ping","id":5,"\u0069d":5})", "bad_json"));
  EXPECT_TRUE(
      fails_without_id(client, R"({"op":"pub","id":6,"topic":"t","data":1,"data":2})", "bad_json"));
  EXPECT_TRUE(fails_without_id(
      client, R"({"op":"pub","id":7,"topic":"t","t\u006fpic":"u","data":1})", "bad_json"));
  EXPECT_TRUE(watcher.sync().empty());
}

TEST(Framing, MemberNamesAndValuesAreComparedAfterUnescaping) {
  test_broker broker;
  auto subscriber = open_client(broker);
  subscribe(subscriber, 1, "esc.t");
  auto client = open_client(broker);
  EXPECT_TRUE(is_answer(request_raw(client, R"({"\u006fp":"ping","id":1})"), "pong", 1));
  EXPECT_TRUE(is_answer(request_raw(client, R"({"op":"p\u0069ng","\u0069d":2})"), "pong", 2));
  EXPECT_TRUE(is_answer(
      request_raw(client,
                  R"({"\u006f\u0070":"\u0070ub","t\u006fpic":"esc.\u0074","\u0064ata":1,"id":3})"),
      "ok", 3));
  const auto frames = subscriber.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0]["topic"], "esc.t");
  EXPECT_EQ(frames[0]["data"], 1);
}

TEST(Framing, RepeatedNamesInsideDataAreNotLookedAt) {
  test_broker broker;
  auto subscriber = open_client(broker);
  subscribe(subscriber, 1, "dup");
  auto client = open_client(broker);
  const std::string data = R"({"a":1,"a":2,"b":{"c":[],"c":{}}})";
  EXPECT_TRUE(is_answer(
      request_raw(client, R"({"op":"pub","topic":"dup","id":1,"data":)" + data + "}"), "ok", 1));
  const auto frame = subscriber.recv_frame();
  ASSERT_TRUE(frame.has_value());
  const auto msg = parse_raw_msg(*frame);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->data, data);
}

TEST(Framing, NestingOfDepth128IsAcceptedAnd129IsBadJsonWithoutId) {
  test_broker broker;
  auto subscriber = open_client(broker);
  subscribe(subscriber, 1, "deep");
  auto client = open_client(broker);

  // The frame's object is level 1, so `data` may open 127 more levels.
  const std::string deepest_ok = nested_arrays(127);
  EXPECT_TRUE(is_answer(
      request_raw(client, R"({"op":"pub","topic":"deep","id":1,"data":)" + deepest_ok + "}"), "ok",
      1));
  const auto frame = subscriber.recv_frame();
  ASSERT_TRUE(frame.has_value());
  const auto msg = parse_raw_msg(*frame);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->data, deepest_ok);

  // Objects count like arrays.
  std::string objects = "1";
  for (int i = 0; i < 127; ++i)
    objects = R"({"k":)" + objects + "}";
  EXPECT_TRUE(
      is_answer(request_raw(client, R"({"op":"pub","topic":"deep","id":2,"data":)" + objects + "}"),
                "ok", 2));
  ASSERT_EQ(only_op(subscriber.sync(), "msg").size(), 1U);

  // One more level: bad_json, answered without the (valid) id, and nothing is published.
  EXPECT_TRUE(fails_without_id(
      client, R"({"op":"pub","topic":"deep","id":3,"data":)" + nested_arrays(128) + "}",
      "bad_json"));
  EXPECT_TRUE(fails_without_id(
      client, R"({"op":"pub","topic":"deep","id":4,"data":{"k":)" + objects + "}}", "bad_json"));
  // Depth counts in fields the server does not know, too.
  EXPECT_TRUE(fails_without_id(client, R"({"op":"ping","id":5,"extra":)" + nested_arrays(128) + "}",
                               "bad_json"));
  EXPECT_TRUE(subscriber.sync().empty());
}

TEST(Framing, UnknownFieldsAreIgnored) {
  test_broker broker;
  auto subscriber = open_client(broker);
  auto client = open_client(broker);
  EXPECT_TRUE(
      is_answer(request_raw(client, R"({"op":"connect","id":1,"future":{"x":[1,2]},"flags":null})"),
                "ok", 1));
  EXPECT_TRUE(is_answer(
      request_raw(subscriber, R"({"op":"sub","sid":1,"topic":"u","id":2,"priority":"high"})"), "ok",
      2));
  EXPECT_TRUE(is_answer(request_raw(client, R"({"op":"ping","id":3,"zzz":[{}]})"), "pong", 3));
  EXPECT_TRUE(is_answer(
      request_raw(client, R"({"op":"pub","topic":"u","data":"d","id":4,"ttl":30,"qos":2})"), "ok",
      4));
  const auto frames = subscriber.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0]["data"], "d");
  EXPECT_TRUE(
      is_answer(request_raw(subscriber, R"({"op":"unsub","sid":1,"id":5,"why":"done"})"), "ok", 5));
  EXPECT_TRUE(is_answer(request_raw(client, R"({"op":"pong","id":6,"extra":true})"), "ok", 6));
}

TEST(Framing, FieldOrderCarriesNoMeaning) {
  test_broker broker;
  auto subscriber = open_client(broker);
  auto client = open_client(broker);
  EXPECT_TRUE(is_answer(request_raw(subscriber, R"({"id":1,"topic":"order.*","sid":4,"op":"sub"})"),
                        "ok", 1));
  EXPECT_TRUE(is_answer(
      request_raw(client,
                  R"({"data":{"z":1},"id":"p","reply":"r.x","topic":"order.a","op":"pub"})"),
      "ok", "p"));
  const auto frames = subscriber.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0]["sid"], 4);
  EXPECT_EQ(frames[0]["topic"], "order.a");
  EXPECT_EQ(frames[0]["reply"], "r.x");
}

TEST(Framing, NullOptionalFieldsAreIgnored) {
  test_broker broker;
  auto first = open_client(broker);
  auto second = open_client(broker);
  auto client = open_client(broker);

  // connect with null optional fields: accepted, echo stays at its default (true).
  EXPECT_TRUE(is_answer(
      request_raw(client,
                  R"({"op":"connect","id":1,"proto":null,"name":null,"token":null,"echo":null})"),
      "ok", 1));

  // "id": null means no id: success is silent.
  client.send_frame(R"({"op":"ping","id":null})");
  {
    const json pong = client.recv();
    EXPECT_EQ(pong.value("op", ""), "pong");
    EXPECT_FALSE(pong.contains("id")) << pong.dump();
  }
  client.send_frame(R"({"op":"pub","topic":"n","data":1,"id":null})");
  EXPECT_TRUE(client.sync().empty());

  // queue: null is a plain subscription, so both connections get every message.
  EXPECT_TRUE(is_answer(
      request_raw(first, R"({"op":"sub","sid":1,"topic":"n","queue":null,"id":2})"), "ok", 2));
  EXPECT_TRUE(is_answer(
      request_raw(second, R"({"op":"sub","sid":1,"topic":"n","queue":null,"id":3})"), "ok", 3));
  EXPECT_TRUE(
      is_answer(request_raw(client, R"({"op":"sub","sid":9,"topic":"n","id":4})"), "ok", 4));

  // reply and headers null: delivered without them, and no no_responders.
  client.send_frame(R"({"op":"pub","topic":"n","data":2,"reply":null,"headers":null,"id":5})");
  {
    // echo is on, so the publisher's own subscription gets it too; how the ok interleaves
    // with that msg is not specified.
    const auto frames = client.sync();
    ASSERT_EQ(frames.size(), 2U);
    const auto oks = only_op(frames, "ok");
    ASSERT_EQ(oks.size(), 1U);
    EXPECT_TRUE(is_answer(oks[0], "ok", 5));
  }
  for (auto* c : {&first, &second}) {
    const auto frames = c->sync();
    ASSERT_EQ(frames.size(), 1U);
    EXPECT_EQ(frames[0]["data"], 2);
    EXPECT_FALSE(frames[0].contains("reply"));
    EXPECT_FALSE(frames[0].contains("headers"));
  }

  // unsub with max: null unsubscribes now.
  EXPECT_TRUE(
      is_answer(request_raw(first, R"({"op":"unsub","sid":1,"max":null,"id":6})"), "ok", 6));
  client.send_frame(R"({"op":"pub","topic":"n","data":3,"id":7})");
  EXPECT_EQ(only_op(client.sync(), "ok").size(), 1U);
  EXPECT_TRUE(first.sync().empty());
  EXPECT_EQ(only_op(second.sync(), "msg").size(), 1U);
}

TEST(Framing, RequiredNullFieldIsMissingButNullDataIsDelivered) {
  test_broker broker;
  auto subscriber = open_client(broker);
  subscribe(subscriber, 1, "nd");
  auto client = open_client(broker);

  EXPECT_TRUE(
      fails_with_id(client, R"({"op":"pub","topic":null,"data":1,"id":1})", "bad_request", 1));
  EXPECT_TRUE(
      fails_with_id(client, R"({"op":"sub","sid":null,"topic":"nd","id":2})", "bad_request", 2));
  EXPECT_TRUE(
      fails_with_id(client, R"({"op":"sub","sid":2,"topic":null,"id":3})", "bad_request", 3));
  EXPECT_TRUE(fails_with_id(client, R"({"op":"unsub","sid":null,"id":4})", "bad_request", 4));
  EXPECT_TRUE(subscriber.sync().empty());

  EXPECT_TRUE(
      is_answer(request_raw(client, R"({"op":"pub","topic":"nd","data":null,"id":5})"), "ok", 5));
  const auto frame = subscriber.recv_frame();
  ASSERT_TRUE(frame.has_value());
  const auto msg = parse_raw_msg(*frame);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->data, "null");
  EXPECT_TRUE(json::parse(*frame).at("data").is_null());
}

}  // namespace
}  // namespace tidings::test
