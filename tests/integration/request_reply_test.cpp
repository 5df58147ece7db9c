// PROTOCOL.md section 7: request and reply, and `no_responders`.

#include "conformance.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tidings::test {
namespace {

TEST(RequestReply, ResponderAnswersOnTheReplyTopic) {
  test_broker broker;
  auto responder = open_client(broker);
  subscribe(responder, 1, "svc.echo");
  auto requester = open_client(broker);
  subscribe(requester, 1, "_INBOX.r1.1");

  EXPECT_TRUE(is_answer(request(requester, {{"op", "pub"},
                                            {"topic", "svc.echo"},
                                            {"reply", "_INBOX.r1.1"},
                                            {"data", "hello"},
                                            {"id", "req"}}),
                        "ok", "req"));
  const json incoming = responder.recv();
  ASSERT_EQ(incoming.value("op", ""), "msg");
  EXPECT_EQ(incoming["reply"], "_INBOX.r1.1");
  EXPECT_EQ(incoming["data"], "hello");

  EXPECT_TRUE(is_answer(
      request(responder,
              {{"op", "pub"}, {"topic", incoming["reply"]}, {"data", "HELLO"}, {"id", 1}}),
      "ok", 1));
  const auto frames = requester.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0]["sid"], 1);
  EXPECT_EQ(frames[0]["topic"], "_INBOX.r1.1");
  EXPECT_EQ(frames[0]["data"], "HELLO");
}

TEST(RequestReply, NoSubscriptionIsNoRespondersWithIdAndTopic) {
  test_broker broker;
  auto requester = open_client(broker);
  subscribe(requester, 1, "_INBOX.r2.>");
  EXPECT_TRUE(fails_with_id(
      requester, R"({"op":"pub","topic":"svc.none","reply":"_INBOX.r2.1","data":1,"id":"q1"})",
      "no_responders", "q1"));
  // Without an id: the err has no id but still names the reply topic.
  requester.send_frame(R"({"op":"pub","topic":"svc.none","reply":"_INBOX.r2.2","data":1})");
  const auto frames = requester.sync();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_TRUE(is_err(frames[0], "no_responders"));
  EXPECT_EQ(frames[0].value("topic", ""), "_INBOX.r2.2");
  // And with an id, the topic is there too.
  const json err = request(
      requester,
      {{"op", "pub"}, {"topic", "svc.none"}, {"reply", "_INBOX.r2.3"}, {"data", 1}, {"id", 3}});
  EXPECT_TRUE(is_err(err, "no_responders", 3));
  EXPECT_EQ(err.value("topic", ""), "_INBOX.r2.3");
  // The connection stays open.
  EXPECT_TRUE(requester.sync().empty());
}

TEST(RequestReply, NoRespondersNamesAReservedReplyTopicToo) {
  test_broker broker;
  auto requester = open_client(broker);
  const json err = request(
      requester,
      {{"op", "pub"}, {"topic", "svc.none"}, {"reply", "$SYS.inbox.9"}, {"data", 1}, {"id", 1}});
  EXPECT_TRUE(is_err(err, "no_responders", 1));
  EXPECT_EQ(err.value("topic", ""), "$SYS.inbox.9");
}

TEST(RequestReply, PubWithoutReplyToNobodyIsNoError) {
  test_broker broker;
  auto publisher = open_client(broker);
  EXPECT_TRUE(is_answer(
      request(publisher, {{"op", "pub"}, {"topic", "svc.none"}, {"data", 1}, {"id", 1}}), "ok", 1));
  publisher.send_json({{"op", "pub"}, {"topic", "svc.none"}, {"data", 1}});
  EXPECT_TRUE(publisher.sync().empty());
}

TEST(RequestReply, EchoFalseRequesterAloneOnTheTopicCountsAsNobody) {
  test_broker broker;
  auto requester = open_client(broker);
  EXPECT_TRUE(
      is_answer(request(requester, {{"op", "connect"}, {"echo", false}, {"id", 1}}), "ok", 1));
  subscribe(requester, 1, "svc.self");
  subscribe(requester, 2, "svc.*");
  const json err = request(
      requester,
      {{"op", "pub"}, {"topic", "svc.self"}, {"reply", "_INBOX.self.1"}, {"data", 1}, {"id", 2}});
  EXPECT_TRUE(is_err(err, "no_responders", 2));
  EXPECT_EQ(err.value("topic", ""), "_INBOX.self.1");
  EXPECT_TRUE(requester.sync().empty());

  // Once another connection listens, the same request goes through.
  auto responder = open_client(broker);
  subscribe(responder, 1, "svc.>");
  EXPECT_TRUE(is_answer(request(requester, {{"op", "pub"},
                                            {"topic", "svc.self"},
                                            {"reply", "_INBOX.self.2"},
                                            {"data", 2},
                                            {"id", 3}}),
                        "ok", 3));
  EXPECT_EQ(only_op(responder.sync(), "msg").size(), 1U);
  EXPECT_TRUE(requester.sync().empty());
}

TEST(RequestReply, EchoTrueRequesterOwnSubscriptionCountsAsAResponder) {
  test_broker broker;
  auto requester = open_client(broker);
  subscribe(requester, 1, "svc.loop");
  requester.send_json(
      {{"op", "pub"}, {"topic", "svc.loop"}, {"reply", "_INBOX.loop.1"}, {"data", 1}, {"id", 1}});
  const auto frames = requester.sync();
  ASSERT_EQ(frames.size(), 2U);  // its own msg and the ok, in an unspecified order
  ASSERT_EQ(only_op(frames, "ok").size(), 1U);
  EXPECT_TRUE(is_answer(only_op(frames, "ok")[0], "ok", 1));
  const auto msgs = only_op(frames, "msg");
  ASSERT_EQ(msgs.size(), 1U);
  EXPECT_EQ(msgs[0]["reply"], "_INBOX.loop.1");
}

TEST(RequestReply, QueueGroupMemberIsAResponder) {
  test_broker broker;
  auto worker = open_client(broker);
  subscribe(worker, 1, "svc.q", "workers");
  auto requester = open_client(broker);
  EXPECT_TRUE(is_answer(
      request(requester,
              {{"op", "pub"}, {"topic", "svc.q"}, {"reply", "_INBOX.q.1"}, {"data", 1}, {"id", 1}}),
      "ok", 1));
  EXPECT_EQ(only_op(worker.sync(), "msg").size(), 1U);
}

TEST(RequestReply, EndedSubscriptionsAreNoResponders) {
  test_broker broker;
  auto responder = open_client(broker);
  subscribe(responder, 1, "svc.once");
  EXPECT_TRUE(
      is_answer(request(responder, {{"op", "unsub"}, {"sid", 1}, {"max", 1}, {"id", 1}}), "ok", 1));
  auto requester = open_client(broker);
  const json first = request(
      requester,
      {{"op", "pub"}, {"topic", "svc.once"}, {"reply", "_INBOX.o.1"}, {"data", 1}, {"id", 1}});
  EXPECT_TRUE(is_answer(first, "ok", 1));
  // The subscription had its one delivery.
  const json second = request(
      requester,
      {{"op", "pub"}, {"topic", "svc.once"}, {"reply", "_INBOX.o.2"}, {"data", 2}, {"id", 2}});
  EXPECT_TRUE(is_err(second, "no_responders", 2));
  EXPECT_EQ(second.value("topic", ""), "_INBOX.o.2");
  EXPECT_EQ(only_op(responder.sync(), "msg").size(), 1U);

  // Unsubscribed and closed connections are nobody too.
  auto gone = std::make_unique<raw_client>(broker.port());
  gone->read_info();
  subscribe(*gone, 1, "svc.gone");
  gone.reset();
  // Closing is eventual from the broker's side: poll the connection count, bounded.
  ASSERT_TRUE(eventually([&] { return broker.server().connections() == 2; }));
  const json third = request(
      requester,
      {{"op", "pub"}, {"topic", "svc.gone"}, {"reply", "_INBOX.o.3"}, {"data", 3}, {"id", 3}});
  EXPECT_TRUE(is_err(third, "no_responders", 3));
}

TEST(RequestReply, ARequestItsOnlyResponderRefusesIsNoResponders) {
  // Issue 9, defect 5: a message refused by the only responder (its queue full under the
  // drop policy) counted as delivered, so the request got `ok` and waited for its timeout.
  broker::config settings = test_broker::default_settings();
  settings.slow_consumer = broker::slow_consumer_policy::drop;
  settings.max_pending = 64 * 1024;
  test_broker broker(settings);
  raw_client responder(broker.port());
  responder.set_receive_buffer(64 * 1024);  // it never reads
  responder.read_info();
  subscribe(responder, 1, "svc.full");
  subscribe(responder, 2, "fill");
  auto requester = open_client(broker);

  // 16 MiB: more than the kernel buffers and max_pending take, so its queue ends full
  // (within 8 KiB of max_pending) and stays so.
  std::string batch;
  for (int i = 0; i < 64; ++i) {
    batch += framed(R"({"op":"pub","topic":"fill","data":")" + std::string(8192, 'f') + "\"}");
  }
  for (int i = 0; i < 32; ++i)
    requester.send_raw(batch);
  ASSERT_TRUE(requester.sync(std::chrono::seconds(60)).empty());
  ASSERT_GT(broker.server().stats().messages_dropped.load(), 0U);

  const json answer = request(requester, {{"op", "pub"},
                                          {"topic", "svc.full"},
                                          {"reply", "_INBOX.f.1"},
                                          {"data", std::string(16 * 1024, 'r')},
                                          {"id", 1}});
  EXPECT_TRUE(is_err(answer, "no_responders", 1));
  EXPECT_EQ(answer.value("topic", ""), "_INBOX.f.1");
}

}  // namespace
}  // namespace tidings::test
