// PROTOCOL.md sections 2, 3 and 4 (and 10): the lifecycle, every client op and field,
// ids, the ok/err answers and their order, and the precedence of errors.

#include "conformance.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tidings::test {
namespace {

// ---------------------------------------------------------------------------------------
// Section 2 and 4: info, connect

TEST(Info, IsSentFirstWithEveryFieldAndItsType) {
  broker::config settings = test_broker::default_settings();
  settings.server_name = "conformance";
  settings.max_frame = 65536;
  settings.max_pending = 1 << 20;
  settings.write_deadline = std::chrono::milliseconds(1234);
  settings.ping_interval = std::chrono::milliseconds(43210);
  test_broker broker(settings);

  // The client sends nothing: info comes before the server reads anything.
  raw_client client(broker.port());
  const json info = client.recv();
  EXPECT_EQ(info.value("op", ""), "info");
  ASSERT_TRUE(info.contains("server") && info["server"].is_string());
  EXPECT_EQ(info["server"], "conformance");
  ASSERT_TRUE(info.contains("version") && info["version"].is_string());
  EXPECT_FALSE(info["version"].get<std::string>().empty());
  ASSERT_TRUE(info.contains("proto") && info["proto"].is_number_integer());
  EXPECT_EQ(info["proto"], 1);
  ASSERT_TRUE(info.contains("max_frame") && info["max_frame"].is_number_integer());
  EXPECT_EQ(info["max_frame"], 65536);
  ASSERT_TRUE(info.contains("max_pending") && info["max_pending"].is_number_integer());
  EXPECT_EQ(info["max_pending"], 1 << 20);
  ASSERT_TRUE(info.contains("write_deadline_ms") && info["write_deadline_ms"].is_number_integer());
  EXPECT_EQ(info["write_deadline_ms"], 1234);
  ASSERT_TRUE(info.contains("auth_required") && info["auth_required"].is_boolean());
  EXPECT_EQ(info["auth_required"], false);
  ASSERT_TRUE(info.contains("client_id") && info["client_id"].is_number_integer());
  EXPECT_GE(info["client_id"].get<std::int64_t>(), 0);
  ASSERT_TRUE(info.contains("ping_interval_ms") && info["ping_interval_ms"].is_number_integer());
  EXPECT_EQ(info["ping_interval_ms"], 43210);
  EXPECT_TRUE(client.sync().empty());
}

TEST(Info, DefaultLimitsAreAdvertised) {
  test_broker broker;
  raw_client client(broker.port());
  const json info = client.read_info();
  EXPECT_EQ(info["max_frame"], 1048576);
  EXPECT_EQ(info["max_pending"], 67108864);
  EXPECT_EQ(info["write_deadline_ms"], 10000);
  EXPECT_EQ(info["ping_interval_ms"], 30000);
}

TEST(Info, ClientIdsAreUniqueForTheServersLifetime) {
  test_broker broker;
  std::set<std::int64_t> seen;
  std::vector<std::unique_ptr<raw_client>> open;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 20; ++i) {
      auto client = std::make_unique<raw_client>(broker.port());
      const json info = client->read_info();
      EXPECT_TRUE(seen.insert(info["client_id"].get<std::int64_t>()).second)
          << "client_id reused: " << info.dump();
      open.push_back(std::move(client));
    }
    // Closed connections do not give their ids back.
    open.erase(open.begin(), open.begin() + 10);
  }
  EXPECT_EQ(seen.size(), 60U);
}

TEST(Connect, AsFirstFrameWithEveryFieldIsAccepted) {
  test_broker broker;
  {
    auto client = open_client(broker);
    EXPECT_TRUE(is_answer(request(client, {{"op", "connect"},
                                           {"id", 1},
                                           {"proto", 1},
                                           {"name", "conformance-test"},
                                           {"token", "t0ken"},
                                           {"echo", true}}),
                          "ok", 1));
    EXPECT_TRUE(client.sync().empty());
  }
  {
    auto client = open_client(broker);
    EXPECT_TRUE(is_answer(request(client, {{"op", "connect"},
                                           {"id", "c"},
                                           {"user", "alice"},
                                           {"pass", "secret"},
                                           {"echo", false}}),
                          "ok", "c"));
  }
  {
    // Every field is optional, and success without an id is silent.
    auto client = open_client(broker);
    client.send_json({{"op", "connect"}});
    EXPECT_TRUE(client.sync().empty());
  }
}

TEST(Connect, LaterThanTheFirstFrameIsBadRequest) {
  test_broker broker;
  auto client = open_client(broker);
  EXPECT_TRUE(is_answer(request(client, {{"op", "ping"}, {"id", 1}}), "pong", 1));
  EXPECT_TRUE(is_err(request(client, {{"op", "connect"}, {"id", 2}}), "bad_request", 2));
  EXPECT_TRUE(client.sync().empty());

  // A second connect is not first either.
  auto other = open_client(broker);
  EXPECT_TRUE(is_answer(request(other, {{"op", "connect"}, {"id", 1}}), "ok", 1));
  EXPECT_TRUE(is_err(request(other, {{"op", "connect"}, {"id", 2}}), "bad_request", 2));
  // Without an id, the err has none.
  EXPECT_TRUE(fails_without_id(other, R"({"op":"connect"})", "bad_request"));
}

TEST(Connect, AnotherProtoIsBadRequestAndCannotBeRetried) {
  test_broker broker;
  auto client = open_client(broker);
  EXPECT_TRUE(
      is_err(request(client, {{"op", "connect"}, {"id", 1}, {"proto", 2}}), "bad_request", 1));
  // The connection stays open, but the rejected connect used up the first frame.
  EXPECT_TRUE(
      is_err(request(client, {{"op", "connect"}, {"id", 2}, {"proto", 1}}), "bad_request", 2));
  EXPECT_TRUE(client.sync().empty());

  auto zero = open_client(broker);
  EXPECT_TRUE(
      is_err(request(zero, {{"op", "connect"}, {"id", 1}, {"proto", 0}}), "bad_request", 1));
}

TEST(Connect, FieldsOfTheWrongTypeAreBadRequest) {
  test_broker broker;
  const std::vector<std::string> bodies = {
      R"({"op":"connect","id":1,"proto":"1"})",
      R"({"op":"connect","id":1,"proto":1.5})",
      R"({"op":"connect","id":1,"proto":true})",
      R"({"op":"connect","id":1,"name":5})",
      R"({"op":"connect","id":1,"name":["a"]})",
      R"({"op":"connect","id":1,"token":1})",
      R"({"op":"connect","id":1,"user":1,"pass":"p"})",
      R"({"op":"connect","id":1,"user":"u","pass":{}})",
      R"({"op":"connect","id":1,"echo":"yes"})",
      R"({"op":"connect","id":1,"echo":1})",
  };
  for (const auto& body : bodies) {
    auto client = open_client(broker);  // connect must be first: a fresh connection each
    EXPECT_TRUE(fails_with_id(client, body, "bad_request", 1));
  }
}

// ---------------------------------------------------------------------------------------
// ping and pong

TEST(Ping, IsAnsweredByPongWithOrWithoutId) {
  test_broker broker;
  auto client = open_client(broker);
  EXPECT_TRUE(is_answer(request(client, {{"op", "ping"}, {"id", 42}}), "pong", 42));
  EXPECT_TRUE(is_answer(request(client, {{"op", "ping"}, {"id", "p-1"}}), "pong", "p-1"));
  client.send_json({{"op", "ping"}});
  const json pong = client.recv();
  EXPECT_EQ(pong.value("op", ""), "pong");
  EXPECT_FALSE(pong.contains("id"));
  EXPECT_TRUE(client.sync().empty());
}

TEST(Pong, WithIdIsAnsweredByOkAndUnsolicitedPongIsIgnored) {
  test_broker broker;
  auto client = open_client(broker);
  EXPECT_TRUE(is_answer(request(client, {{"op", "pong"}, {"id", 7}}), "ok", 7));
  EXPECT_TRUE(is_answer(request(client, {{"op", "pong"}, {"id", "q"}}), "ok", "q"));
  // Unsolicited and without id: nothing comes back, and the connection stays.
  client.send_json({{"op", "pong"}});
  client.send_json({{"op", "pong"}});
  EXPECT_TRUE(client.sync().empty());
}

// ---------------------------------------------------------------------------------------
// ids

TEST(Id, ValidIdsAreEchoedExactlyOnEveryOp) {
  test_broker broker;
  auto client = open_client(broker);
  std::string longest_utf8;
  for (int i = 0; i < 32; ++i)
    longest_utf8 += "\xc3\xa9";  // 32 x "é"
  const std::vector<json> ids = {
      0,
      1,
      -1,
      9007199254740991LL,
      -9007199254740991LL,
      "",
      "a",
      std::string(64, 'x'),
      "\xc3\xa9\xc3\xa9",  // "éé": 4 bytes
      longest_utf8,        // 64 bytes
      "quote \" backslash \\ tab \t",
  };
  std::uint64_t sid = 1;
  for (const auto& id : ids) {
    EXPECT_TRUE(is_answer(request(client, {{"op", "ping"}, {"id", id}}), "pong", id));
    EXPECT_TRUE(is_answer(request(client, {{"op", "pong"}, {"id", id}}), "ok", id));
    EXPECT_TRUE(is_answer(
        request(client, {{"op", "sub"}, {"sid", sid}, {"topic", "ids"}, {"id", id}}), "ok", id));
    EXPECT_TRUE(is_answer(request(client, {{"op", "unsub"}, {"sid", sid}, {"id", id}}), "ok", id));
    EXPECT_TRUE(
        is_answer(request(client, {{"op", "pub"}, {"topic", "ids.none"}, {"data", 1}, {"id", id}}),
                  "ok", id));
    EXPECT_TRUE(is_err(request(client, {{"op", "nope"}, {"id", id}}), "unknown_op", id));
    ++sid;
  }
  // Integers come back as written, not re-encoded.
  client.send_frame(R"({"op":"ping","id":9007199254740991})");
  const auto raw = client.recv_frame();
  ASSERT_TRUE(raw.has_value());
  EXPECT_NE(raw->find("9007199254740991"), std::string::npos) << *raw;
  // An escaped string id comes back as the same string.
  EXPECT_TRUE(is_answer(request_raw(client, R"({"op":"ping","id":"\u0041\n"})"), "pong", "A\n"));
}

TEST(Id, InvalidIdIsBadRequestWithoutIdAndTheFrameHasNoEffect) {
  test_broker broker;
  auto watcher = open_client(broker);
  subscribe(watcher, 1, "bad.id");
  auto client = open_client(broker);
  std::string too_long_utf8;
  for (int i = 0; i < 33; ++i)
    too_long_utf8 += "\xc3\xa9";  // 66 bytes
  const std::vector<std::string> ids = {
      "9007199254740992",
      "-9007199254740992",
      "18446744073709551616",
      "1.5",
      "-0.5",
      "true",
      "false",
      "[1]",
      R"({"n":1})",
      "\"" + std::string(65, 'x') + "\"",
      "\"" + too_long_utf8 + "\"",
  };
  for (const auto& id : ids) {
    EXPECT_TRUE(fails_without_id(client, R"({"op":"ping","id":)" + id + "}", "bad_request"));
    EXPECT_TRUE(fails_without_id(
        client, R"({"op":"pub","topic":"bad.id","data":1,"id":)" + id + "}", "bad_request"));
    EXPECT_TRUE(fails_without_id(client, R"({"op":"sub","sid":5,"topic":"bad.id","id":)" + id + "}",
                                 "bad_request"));
  }
  // None of the pubs was delivered, none of the subs was made.
  EXPECT_TRUE(watcher.sync().empty());
  client.send_json({{"op", "pub"}, {"topic", "bad.id"}, {"data", "real"}});
  EXPECT_TRUE(client.sync().empty());
  const auto frames = watcher.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0]["data"], "real");
  // sid 5 was never subscribed, so it is free.
  subscribe(client, 5, "bad.id");
}

TEST(Answers, ComeInTheOrderOfTheFramesTheyAnswer) {
  test_broker broker;
  auto client = open_client(broker);
  const std::vector<std::string> bodies = {
      R"({"op":"sub","sid":1,"topic":"ord","id":1})",
      R"({"op":"sub","sid":1,"topic":"ord","id":2})",  // duplicate sid
      R"({"op":"pub","topic":"ord","data":1,"id":3})",
      R"({"op":"ping","id":4})",
      R"({"op":"pub","topic":"a..b","data":1,"id":5})",
      R"({"op":"unsub","sid":1,"id":6})",
      R"({"op":"pong","id":7})",
      R"({"op":"frob","id":8})",
      R"({"op":"pub","topic":"$x","data":1,"id":9})",
      R"({"id":10})",
      R"({"op":"pub","topic":"ord","data":1,"reply":"r","id":11})",
      R"({"op":"unsub","sid":99,"id":12})",
  };
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"ok", ""},          {"err", "bad_request"},   {"ok", ""},
      {"pong", ""},        {"err", "invalid_topic"}, {"ok", ""},
      {"ok", ""},          {"err", "unknown_op"},    {"err", "permission_denied"},
      {"err", "bad_json"}, {"err", "no_responders"}, {"ok", ""},
  };
  std::string batch;
  for (const auto& body : bodies) {
    const auto n = static_cast<std::uint32_t>(body.size());
    batch += static_cast<char>(n >> 24);
    batch += static_cast<char>(n >> 16);
    batch += static_cast<char>(n >> 8);
    batch += static_cast<char>(n);
    batch += body;
  }
  client.send_raw(batch);  // one write: the server reads them together
  const auto frames = client.sync();
  std::vector<json> answers;
  for (const auto& frame : frames) {
    if (frame.value("op", "") != "msg") answers.push_back(frame);
  }
  ASSERT_EQ(answers.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const json id = static_cast<int>(i + 1);
    if (expected[i].first == "err") {
      EXPECT_TRUE(is_err(answers[i], expected[i].second, id)) << "answer " << i;
    } else {
      EXPECT_TRUE(is_answer(answers[i], expected[i].first, id)) << "answer " << i;
    }
  }
  // The one msg: the pub with id 3 reached the connection's own subscription.
  EXPECT_EQ(only_op(frames, "msg").size(), 1U);
}

TEST(Answers, SuccessWithoutIdIsSilent) {
  test_broker broker;
  auto other = open_client(broker);
  subscribe(other, 1, "quiet");
  auto client = open_client(broker);
  client.send_json({{"op", "connect"}, {"name", "quiet"}});
  client.send_json({{"op", "sub"}, {"sid", 1}, {"topic", "elsewhere"}});
  client.send_json({{"op", "pub"}, {"topic", "quiet"}, {"data", 1}});
  client.send_json({{"op", "pub"}, {"topic", "nobody.listens"}, {"data", 1}});
  client.send_json({{"op", "unsub"}, {"sid", 1}});
  client.send_json({{"op", "unsub"}, {"sid", 12345}});
  client.send_json({{"op", "unsub"}, {"sid", 2}, {"max", 5}});
  client.send_json({{"op", "pong"}});
  EXPECT_TRUE(client.sync().empty());
  EXPECT_EQ(only_op(other.sync(), "msg").size(), 1U);
}

TEST(Answers, FailureWithoutIdIsAnErrWithoutId) {
  test_broker broker;
  auto client = open_client(broker);
  EXPECT_TRUE(fails_without_id(client, R"({"op":"pub","topic":"a..b","data":1})", "invalid_topic"));
  EXPECT_TRUE(fails_without_id(client, R"({"op":"sub","topic":"x"})", "bad_request"));
  EXPECT_TRUE(fails_without_id(client, R"({"op":"what"})", "unknown_op"));
  EXPECT_TRUE(
      fails_without_id(client, R"({"op":"pub","topic":"$x","data":1})", "permission_denied"));
}

// ---------------------------------------------------------------------------------------
// unknown ops, section 10

TEST(UnknownOp, IsAnsweredAndTheConnectionStays) {
  test_broker broker;
  auto client = open_client(broker);
  // Server ops, reserved ops, case variants and the empty string are not client ops.
  for (const char* op : {"nope", "PUB", "Ping", "", "info", "msg", "ok", "err", "ack", "nack",
                         "subscribe", "publish"}) {
    EXPECT_TRUE(is_err(request(client, {{"op", op}, {"id", op}}), "unknown_op", op)) << op;
  }
  EXPECT_TRUE(fails_without_id(client, R"({"op":"ack","sid":1})", "unknown_op"));
  EXPECT_TRUE(client.sync().empty());
}

TEST(Reserved, RetainOnPubIsIgnored) {
  test_broker broker;
  auto subscriber = open_client(broker);
  subscribe(subscriber, 1, "retained");
  auto client = open_client(broker);
  EXPECT_TRUE(is_answer(
      request(client,
              {{"op", "pub"}, {"topic", "retained"}, {"data", "v"}, {"retain", true}, {"id", 1}}),
      "ok", 1));
  const auto frames = subscriber.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0]["data"], "v");
  // A v1 server keeps no last value: a later subscriber receives nothing.
  auto late = open_client(broker);
  subscribe(late, 1, "retained");
  EXPECT_TRUE(late.sync().empty());
  // Even a retain value of the wrong type is ignored: it is not a v1 field.
  EXPECT_TRUE(is_answer(
      request(client,
              {{"op", "pub"}, {"topic", "retained"}, {"data", 2}, {"retain", "x"}, {"id", 2}}),
      "ok", 2));
}

// ---------------------------------------------------------------------------------------
// pub

TEST(Pub, MalformedFieldsAreBadRequest) {
  test_broker broker;
  auto watcher = open_client(broker);
  subscribe(watcher, 1, ">");
  auto client = open_client(broker);
  const std::vector<std::string> fields = {
      R"("data":1)",                                               // no topic
      R"("topic":5,"data":1)",                                     // topic not a string
      R"("topic":["t"],"data":1)",                                 //
      R"("topic":"t")",                                            // no data
      R"("topic":"t","data":1,"reply":5)",                         // reply not a string
      R"("topic":"t","data":1,"reply":{"t":1})",                   //
      R"("topic":"t","data":1,"headers":"k:v")",                   // headers not an object
      R"("topic":"t","data":1,"headers":[["k","v"]])",             //
      R"("topic":"t","data":1,"headers":{"k":1})",                 // value not a string
      R"("topic":"t","data":1,"headers":{"k":null})",              //
      R"("topic":"t","data":1,"headers":{"k":["v"]})",             //
      R"("topic":"t","data":1,"headers":{"":"v"})",                // empty name
      R"("topic":"t","data":1,"headers":{"k":"1","k":"2"})",       // repeated name
      R"("topic":"t","data":1,"headers":{"k":"1","\u006b":"2"})",  // repeated after unescaping
  };
  int id = 1;
  for (const auto& f : fields) {
    EXPECT_TRUE(fails_with_id(client, R"({"op":"pub","id":)" + std::to_string(id) + "," + f + "}",
                              "bad_request", id));
    ++id;
  }
  EXPECT_TRUE(watcher.sync().empty());
}

TEST(Pub, HeaderNamesAreCaseSensitiveAndFreeForm) {
  test_broker broker;
  auto subscriber = open_client(broker);
  subscribe(subscriber, 1, "h");
  auto client = open_client(broker);
  const std::string headers =
      R"({"Key":"1","key":"2","KEY":"3","with space":"","ü":"x","a.b-c_d":"\u00e9"})";
  EXPECT_TRUE(is_answer(
      request_raw(client, R"({"op":"pub","topic":"h","data":0,"id":1,"headers":)" + headers + "}"),
      "ok", 1));
  const auto frame = subscriber.recv_frame();
  ASSERT_TRUE(frame.has_value());
  const auto msg = parse_raw_msg(*frame);
  ASSERT_TRUE(msg.has_value());
  ASSERT_TRUE(msg->headers.has_value());
  EXPECT_EQ(*msg->headers, headers);
}

TEST(Pub, OnlyMaxFrameBoundsTheNumberOfHeaders) {
  test_broker broker;
  auto subscriber = open_client(broker);
  subscribe(subscriber, 1, "many");
  auto client = open_client(broker);
  std::string headers = "{";
  for (int i = 0; i < 2000; ++i) {
    if (i > 0) headers += ',';
    headers += "\"h" + std::to_string(i) + "\":\"v" + std::to_string(i) + "\"";
  }
  headers += "}";
  EXPECT_TRUE(is_answer(
      request_raw(client,
                  R"({"op":"pub","topic":"many","data":1,"id":1,"headers":)" + headers + "}"),
      "ok", 1));
  const auto frame = subscriber.recv_frame();
  ASSERT_TRUE(frame.has_value());
  const auto msg = parse_raw_msg(*frame);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->headers.value_or(""), headers);
  // A repeat far down the list is still found.
  const std::string repeated = headers.substr(0, headers.size() - 1) + R"(,"h1000":"again"})";
  EXPECT_TRUE(fails_with_id(
      client, R"({"op":"pub","topic":"many","data":1,"id":2,"headers":)" + repeated + "}",
      "bad_request", 2));
  EXPECT_TRUE(subscriber.sync().empty());
}

TEST(Pub, RepeatedNameAmongManyTopLevelMembersIsBadJson) {
  test_broker broker;
  auto client = open_client(broker);
  std::string extra;
  for (int i = 0; i < 100; ++i)
    extra += ",\"x" + std::to_string(i) + "\":" + std::to_string(i);
  EXPECT_TRUE(is_answer(request_raw(client, R"({"op":"ping","id":1)" + extra + "}"), "pong", 1));
  EXPECT_TRUE(
      fails_without_id(client, R"({"op":"ping","id":2)" + extra + R"(,"x50":0})", "bad_json"));
  EXPECT_TRUE(fails_without_id(
      client, R"({"op":"ping","id":3)" + extra + R"(,"\u0078\u0035\u0030":0})", "bad_json"));
}

TEST(Pub, InvalidTopicOrReplyIsInvalidTopic) {
  test_broker broker;
  auto watcher = open_client(broker);
  subscribe(watcher, 1, ">");
  auto client = open_client(broker);
  const std::vector<std::string> topics = {
      "",    "a..b", ".a",        "a.",    "a*",       "*", ">",  "a.*",
      "a.>", "a b",  "tab\there", "a\x7f", "\xc3\xa9", ".", "..", std::string(257, 'x'),
  };
  int id = 1;
  for (const auto& topic : topics) {
    EXPECT_TRUE(is_err(request(client, {{"op", "pub"}, {"topic", topic}, {"data", 1}, {"id", id}}),
                       "invalid_topic", id))
        << "topic '" << topic << "'";
    ++id;
    EXPECT_TRUE(is_err(
        request(client,
                {{"op", "pub"}, {"topic", "ok.topic"}, {"reply", topic}, {"data", 1}, {"id", id}}),
        "invalid_topic", id))
        << "reply '" << topic << "'";
    ++id;
  }
  EXPECT_TRUE(watcher.sync().empty());
  // The longest topic, 256 bytes, is valid.
  const std::string longest = std::string(128, 'a') + "." + std::string(127, 'b');
  ASSERT_EQ(longest.size(), 256U);
  EXPECT_TRUE(is_answer(
      request(client, {{"op", "pub"}, {"topic", longest}, {"data", 1}, {"id", "l"}}), "ok", "l"));
  const auto frames = watcher.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0]["topic"], longest);
}

TEST(Pub, ToReservedTopicIsPermissionDenied) {
  test_broker broker;
  auto watcher = open_client(broker);
  subscribe(watcher, 1, "$SYS.>");
  subscribe(watcher, 2, "$x");
  subscribe(watcher, 3, ">");
  auto client = open_client(broker);
  int id = 1;
  for (const char* topic : {"$SYS.x", "$SYS.a.b", "$x", "$"}) {
    EXPECT_TRUE(fails_with_id(
        client, json({{"op", "pub"}, {"topic", topic}, {"data", 1}, {"id", id}}).dump(),
        "permission_denied", id));
    ++id;
  }
  EXPECT_TRUE(watcher.sync().empty());
  // `$` only counts at the start of the topic.
  EXPECT_TRUE(is_answer(
      request(client, {{"op", "pub"}, {"topic", "a$.$b"}, {"data", 1}, {"id", 9}}), "ok", 9));
  EXPECT_EQ(only_op(watcher.sync(), "msg").size(), 1U);
}

// ---------------------------------------------------------------------------------------
// sub

TEST(Sub, MalformedSidIsBadRequest) {
  test_broker broker;
  auto client = open_client(broker);
  const std::vector<std::string> sids = {
      "0",
      "-1",
      "1.5",
      "1.0",
      "1e3",
      "1E2",
      "\"1\"",
      "true",
      "[1]",
      "{}",
      "9007199254740992",
      "18446744073709551616",
  };
  int id = 1;
  for (const auto& sid : sids) {
    EXPECT_TRUE(fails_with_id(
        client, R"({"op":"sub","topic":"s","sid":)" + sid + R"(,"id":)" + std::to_string(id) + "}",
        "bad_request", id))
        << sid;
    ++id;
  }
  EXPECT_TRUE(fails_with_id(client, R"({"op":"sub","topic":"s","id":100})", "bad_request", 100));
  // The extremes are valid.
  subscribe(client, 1, "s");
  subscribe(client, 9007199254740991ULL, "s");
}

TEST(Sub, MissingOrMalformedTopicIsBadRequest) {
  test_broker broker;
  auto client = open_client(broker);
  EXPECT_TRUE(fails_with_id(client, R"({"op":"sub","sid":1,"id":1})", "bad_request", 1));
  EXPECT_TRUE(fails_with_id(client, R"({"op":"sub","sid":1,"topic":5,"id":2})", "bad_request", 2));
  EXPECT_TRUE(
      fails_with_id(client, R"({"op":"sub","sid":1,"topic":["a"],"id":3})", "bad_request", 3));
}

TEST(Sub, InvalidPatternIsInvalidTopic) {
  test_broker broker;
  auto client = open_client(broker);
  const std::vector<std::string> patterns = {
      "",    "a*",   "*b",       "a.>.c", "a..b",
      ">.a", "a.b*", "**",       ">>",    "a.",
      ".a",  "a b",  "\xc3\xa9", "a\x01", std::string(257, 'x'),
  };
  int id = 1;
  for (const auto& pattern : patterns) {
    EXPECT_TRUE(
        is_err(request(client, {{"op", "sub"}, {"sid", id}, {"topic", pattern}, {"id", id}}),
               "invalid_topic", id))
        << "'" << pattern << "'";
    ++id;
  }
  EXPECT_TRUE(client.sync().empty());
  std::uint64_t sid = 100;
  for (const char* pattern : {"*", ">", "a.*.c", "*.*", "a.>", "*.>", "$SYS.>", "$SYS.*", "a"}) {
    subscribe(client, sid++, pattern);
  }
}

TEST(Sub, QueueOutsideItsFormatIsBadRequest) {
  test_broker broker;
  auto client = open_client(broker);
  const std::vector<json> queues = {
      "",   std::string(65, 'q'), "a b", "tab\t", "a\x01", "\xc3\xa9", "del\x7f", 5,
      true, json::array({"q"}),
  };
  int id = 1;
  for (const auto& queue : queues) {
    EXPECT_TRUE(is_err(
        request(client, {{"op", "sub"}, {"sid", id}, {"topic", "q"}, {"queue", queue}, {"id", id}}),
        "bad_request", id))
        << queue.dump();
    ++id;
  }
  EXPECT_TRUE(client.sync().empty());
  subscribe(client, 100, "q", "x");
  subscribe(client, 101, "q", std::string(64, 'q'));
  subscribe(client, 102, "q", "!#$%&'()*+,-./0:;<=>?@[\\]^_`{|}~");
}

TEST(Sub, DuplicateSidIsBadRequestAndTheFirstStays) {
  test_broker broker;
  auto client = open_client(broker);
  auto publisher = open_client(broker);
  subscribe(client, 1, "dup.a");
  EXPECT_TRUE(is_err(request(client, {{"op", "sub"}, {"sid", 1}, {"topic", "dup.b"}, {"id", 2}}),
                     "bad_request", 2));
  // Also with the same topic, and with a queue.
  EXPECT_TRUE(is_err(request(client, {{"op", "sub"}, {"sid", 1}, {"topic", "dup.a"}, {"id", 3}}),
                     "bad_request", 3));
  EXPECT_TRUE(is_err(
      request(client, {{"op", "sub"}, {"sid", 1}, {"topic", "dup.a"}, {"queue", "g"}, {"id", 4}}),
      "bad_request", 4));
  // bad_request outranks invalid_topic: duplicate sid with an invalid pattern.
  EXPECT_TRUE(is_err(request(client, {{"op", "sub"}, {"sid", 1}, {"topic", "a*"}, {"id", 5}}),
                     "bad_request", 5));
  EXPECT_TRUE(fails_without_id(client, R"({"op":"sub","sid":1,"topic":"a.>.c"})", "bad_request"));

  publisher.send_json({{"op", "pub"}, {"topic", "dup.a"}, {"data", "a"}});
  publisher.send_json({{"op", "pub"}, {"topic", "dup.b"}, {"data", "b"}});
  EXPECT_TRUE(publisher.sync().empty());
  const auto frames = client.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0]["sid"], 1);
  EXPECT_EQ(frames[0]["data"], "a");
}

TEST(Sub, SidIsReusableAfterUnsubscribe) {
  test_broker broker;
  auto client = open_client(broker);
  auto publisher = open_client(broker);
  subscribe(client, 3, "old");
  EXPECT_TRUE(is_answer(request(client, {{"op", "unsub"}, {"sid", 3}, {"id", 1}}), "ok", 1));
  subscribe(client, 3, "new");
  publisher.send_json({{"op", "pub"}, {"topic", "old"}, {"data", 1}});
  publisher.send_json({{"op", "pub"}, {"topic", "new"}, {"data", 2}});
  EXPECT_TRUE(publisher.sync().empty());
  const auto frames = client.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0]["sid"], 3);
  EXPECT_EQ(frames[0]["topic"], "new");
}

TEST(Sub, SidsAreScopedToTheirConnection) {
  test_broker broker;
  auto first = open_client(broker);
  auto second = open_client(broker);
  subscribe(first, 1, "scoped");
  subscribe(second, 1, "scoped");  // the same sid on another connection is no duplicate
  auto publisher = open_client(broker);
  publisher.send_json({{"op", "pub"}, {"topic", "scoped"}, {"data", 1}});
  EXPECT_TRUE(publisher.sync().empty());
  EXPECT_EQ(only_op(first.sync(), "msg").size(), 1U);
  EXPECT_EQ(only_op(second.sync(), "msg").size(), 1U);
}

// ---------------------------------------------------------------------------------------
// unsub

TEST(Unsub, MalformedFieldsAreBadRequest) {
  test_broker broker;
  auto client = open_client(broker);
  subscribe(client, 1, "u");
  const std::vector<std::string> bodies = {
      R"({"op":"unsub","id":1})",
      R"({"op":"unsub","sid":0,"id":1})",
      R"({"op":"unsub","sid":-1,"id":1})",
      R"({"op":"unsub","sid":"1","id":1})",
      R"({"op":"unsub","sid":1.5,"id":1})",
      R"({"op":"unsub","sid":1,"max":0,"id":1})",
      R"({"op":"unsub","sid":1,"max":-1,"id":1})",
      R"({"op":"unsub","sid":1,"max":1.5,"id":1})",
      R"({"op":"unsub","sid":1,"max":"2","id":1})",
      R"({"op":"unsub","sid":1,"max":true,"id":1})",
      R"({"op":"unsub","sid":1,"max":9007199254740992,"id":1})",
  };
  for (const auto& body : bodies) {
    EXPECT_TRUE(fails_with_id(client, body, "bad_request", 1));
  }
  // None of them touched sid 1.
  auto publisher = open_client(broker);
  publisher.send_json({{"op", "pub"}, {"topic", "u"}, {"data", 1}});
  EXPECT_TRUE(publisher.sync().empty());
  EXPECT_EQ(only_op(client.sync(), "msg").size(), 1U);
}

TEST(Unsub, UnknownSidIsNotAnError) {
  test_broker broker;
  auto client = open_client(broker);
  EXPECT_TRUE(is_answer(request(client, {{"op", "unsub"}, {"sid", 77}, {"id", 1}}), "ok", 1));
  EXPECT_TRUE(
      is_answer(request(client, {{"op", "unsub"}, {"sid", 77}, {"max", 3}, {"id", 2}}), "ok", 2));
  subscribe(client, 5, "u");
  EXPECT_TRUE(is_answer(request(client, {{"op", "unsub"}, {"sid", 5}, {"id", 3}}), "ok", 3));
  EXPECT_TRUE(is_answer(request(client, {{"op", "unsub"}, {"sid", 5}, {"id", 4}}), "ok", 4));
}

TEST(Unsub, WithoutMaxStopsDeliveryAtOnce) {
  test_broker broker;
  auto client = open_client(broker);
  auto publisher = open_client(broker);
  subscribe(client, 1, "stop");
  subscribe(client, 2, "stop");
  publisher.send_json({{"op", "pub"}, {"topic", "stop"}, {"data", 1}});
  EXPECT_TRUE(publisher.sync().empty());
  EXPECT_TRUE(is_answer(request(client, {{"op", "unsub"}, {"sid", 1}, {"id", 1}}), "ok", 1));
  publisher.send_json({{"op", "pub"}, {"topic", "stop"}, {"data", 2}});
  EXPECT_TRUE(publisher.sync().empty());
  // The two msgs of the first pub were before the ok (skipped by request); after it, only
  // sid 2 receives.
  const auto frames = client.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0]["sid"], 2);
  EXPECT_EQ(frames[0]["data"], 2);
}

TEST(Unsub, WithMaxRemovesTheSubscriptionAfterMaxDeliveries) {
  test_broker broker;
  auto client = open_client(broker);
  auto publisher = open_client(broker);
  subscribe(client, 1, "max.*");
  subscribe(client, 2, "max.*");  // a second subscription without max keeps counting
  EXPECT_TRUE(
      is_answer(request(client, {{"op", "unsub"}, {"sid", 1}, {"max", 3}, {"id", 1}}), "ok", 1));
  for (int i = 0; i < 6; ++i) {
    publisher.send_json({{"op", "pub"}, {"topic", "max.x"}, {"data", i}});
  }
  EXPECT_TRUE(publisher.sync().empty());
  const auto frames = client.sync();
  std::vector<int> first;
  std::vector<int> second;
  for (const auto& f : frames) {
    ASSERT_EQ(f.value("op", ""), "msg");
    (f["sid"] == 1 ? first : second).push_back(f["data"].get<int>());
  }
  EXPECT_EQ(first, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(second, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  // The expired sid is free again.
  subscribe(client, 1, "max.*");
}

TEST(Unsub, WithMaxCountsDeliveriesSinceTheSubscriptionWasMade) {
  test_broker broker;
  auto client = open_client(broker);
  auto publisher = open_client(broker);
  subscribe(client, 1, "max.early");
  for (int i = 0; i < 2; ++i) {
    publisher.send_json({{"op", "pub"}, {"topic", "max.early"}, {"data", i}});
  }
  EXPECT_TRUE(publisher.sync().empty());
  EXPECT_EQ(only_op(client.sync(), "msg").size(), 2U);
  // Two deliveries so far; max 3 leaves exactly one more.
  EXPECT_TRUE(
      is_answer(request(client, {{"op", "unsub"}, {"sid", 1}, {"max", 3}, {"id", 1}}), "ok", 1));
  for (int i = 2; i < 5; ++i) {
    publisher.send_json({{"op", "pub"}, {"topic", "max.early"}, {"data", i}});
  }
  EXPECT_TRUE(publisher.sync().empty());
  const auto frames = client.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0]["data"], 2);
}

TEST(Unsub, WithMaxAlreadyReachedUnsubscribesAtOnce) {
  test_broker broker;
  auto client = open_client(broker);
  auto publisher = open_client(broker);
  subscribe(client, 1, "max.done");
  for (int i = 0; i < 3; ++i) {
    publisher.send_json({{"op", "pub"}, {"topic", "max.done"}, {"data", i}});
  }
  EXPECT_TRUE(publisher.sync().empty());
  EXPECT_EQ(only_op(client.sync(), "msg").size(), 3U);
  EXPECT_TRUE(
      is_answer(request(client, {{"op", "unsub"}, {"sid", 1}, {"max", 2}, {"id", 1}}), "ok", 1));
  publisher.send_json({{"op", "pub"}, {"topic", "max.done"}, {"data", 9}});
  EXPECT_TRUE(publisher.sync().empty());
  EXPECT_TRUE(client.sync().empty());
  // Gone at once, so the sid is free.
  subscribe(client, 1, "max.done");
}

// ---------------------------------------------------------------------------------------
// Precedence: bad_json > unknown_op > bad_request > invalid_topic > permission_denied >
// too_many_subscriptions > no_responders. The err carries the id only when it is valid.

TEST(Precedence, FirstFaultInTheDocumentedOrderIsReported) {
  broker::config settings = test_broker::default_settings();
  settings.max_subscriptions = 1;
  test_broker broker(settings);
  auto client = open_client(broker);
  subscribe(client, 1, "taken");  // now at the subscription limit

  struct fault {
    std::string body;
    std::string code;
    std::optional<json> id;
  };
  const std::vector<fault> cases = {
      // bad_json beats everything.
      {R"({"op":"nope","id":1,"op":"nope"})", "bad_json", std::nullopt},
      {R"({"op":"pub","topic":"$x","data":[)", "bad_json", std::nullopt},
      {R"({"op":5,"id":2,"topic":"a..b"})", "bad_json", 2},
      // unknown_op beats bad_request (an invalid id included) and the rest.
      {R"({"op":"nope","id":1.5})", "unknown_op", std::nullopt},
      {R"({"op":"nope","id":3,"topic":"a..b","sid":0})", "unknown_op", 3},
      // bad_request beats invalid_topic, permission_denied, too_many_subscriptions.
      {R"({"op":"pub","topic":"a..b","id":4})", "bad_request", 4},  // data missing
      {R"({"op":"pub","topic":"a..b","data":1,"id":true})", "bad_request", std::nullopt},
      {R"({"op":"pub","topic":"$x","data":1,"reply":5,"id":5})", "bad_request", 5},
      {R"({"op":"pub","topic":"$x","data":1,"headers":[],"id":6})", "bad_request", 6},
      {R"({"op":"sub","sid":0,"topic":"a*","id":7})", "bad_request", 7},
      {R"({"op":"sub","sid":2,"topic":"a*","queue":"","id":8})", "bad_request", 8},
      {R"({"op":"sub","sid":1,"topic":"fine","id":9})", "bad_request", 9},  // duplicate, at limit
      {R"({"op":"sub","sid":1,"topic":"a*","id":10})", "bad_request", 10},
      // invalid_topic beats permission_denied and too_many_subscriptions.
      {R"({"op":"pub","topic":"$x.*","data":1,"id":11})", "invalid_topic", 11},
      {R"({"op":"pub","topic":"$x","reply":"a..b","data":1,"id":12})", "invalid_topic", 12},
      {R"({"op":"sub","sid":3,"topic":"a.>.c","id":13})", "invalid_topic", 13},
      // permission_denied beats no_responders.
      {R"({"op":"pub","topic":"$x","reply":"inbox.1","data":1,"id":14})", "permission_denied", 14},
      // too_many_subscriptions, once nothing else is wrong.
      {R"({"op":"sub","sid":4,"topic":"ok","id":15})", "too_many_subscriptions", 15},
      // no_responders last.
      {R"({"op":"pub","topic":"nobody","reply":"inbox.1","data":1,"id":16})", "no_responders", 16},
  };
  for (const auto& c : cases) {
    if (c.id) {
      EXPECT_TRUE(fails_with_id(client, c.body, c.code, *c.id));
    } else {
      EXPECT_TRUE(fails_without_id(client, c.body, c.code));
    }
  }
}

}  // namespace
}  // namespace tidings::test
