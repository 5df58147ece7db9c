#include "tidings/broker/router.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tidings/protocol/encoder.hpp"

namespace tidings::broker {
namespace {

// Records what the router hands it, like a session would queue it.
class fake_subscriber final : public subscriber {
 public:
  // As a session does, but single-threaded: no lock.
  enqueue_result enqueue_msg(subscription& sub, const shared_body& body) override {
    ++offered;
    if (!accepting || !sub.may_accept()) return {};
    received.push_back({sub.sid, std::string(body.view())});
    bodies.push_back(body);
    const bool last = sub.count_accepted();
    const bool wake = !wake_due;
    wake_due = true;
    return {true, wake, last};
  }
  void wake() override {
    ++wakes;
    wake_due = false;
  }
  // Plain pointers: a subscription owns its subscriber, keeping it here would be a cycle.
  void expire(const std::shared_ptr<subscription>& sub) override { expired.push_back(sub.get()); }

  struct delivery {
    std::uint64_t sid;
    std::string body;
  };
  std::vector<delivery> received;
  std::vector<shared_body> bodies;
  std::vector<const subscription*> expired;
  int offered = 0;  // enqueue_msg calls, refused ones included
  int wakes = 0;
  bool wake_due = false;
  bool accepting = true;
};

class router_test : public ::testing::TestWithParam<bool> {
 protected:
  router_test() : index_(subscription_index::options{GetParam(), 64}), router_(index_) {}

  std::shared_ptr<subscription> subscribe(const std::shared_ptr<fake_subscriber>& owner,
                                          std::uint64_t sid, std::string pattern,
                                          std::string queue = {}) {
    auto sub = std::make_shared<subscription>(owner, sid, std::move(pattern), std::move(queue));
    index_.insert(sub);
    return sub;
  }

  std::size_t publish(const subscriber* from, std::string_view topic, std::string_view data,
                      bool echo = true, std::string_view reply = {},
                      std::string_view headers = {}) {
    protocol::pub_message pub;
    pub.topic = topic;
    pub.data = data;
    pub.reply = reply;
    pub.headers = headers;
    const auto n = router_.publish(from, echo, pub, batch_);
    batch_.flush();
    return n;
  }

  subscription_index index_;
  router router_;
  delivery_batch batch_;
};

INSTANTIATE_TEST_SUITE_P(cache, router_test, ::testing::Values(false, true),
                         [](const auto& param_info) {
                           return param_info.param ? "cache_on" : "cache_off";
                         });

TEST_P(router_test, body_is_encoded_once_and_shared_by_every_target) {
  auto a = std::make_shared<fake_subscriber>();
  auto b = std::make_shared<fake_subscriber>();
  subscribe(a, 1, "orders.*");
  subscribe(b, 7, "orders.>");
  subscribe(b, 8, "orders.created");

  EXPECT_EQ(publish(nullptr, "orders.created", R"({"n":1e3})"), 3U);

  ASSERT_EQ(a->received.size(), 1U);
  ASSERT_EQ(b->received.size(), 2U);
  std::string expected;
  protocol::encode_msg_body(expected, "orders.created", R"({"n":1e3})");
  EXPECT_EQ(a->received[0].body, expected);
  // One allocation for all three deliveries: the same buffer everywhere.
  EXPECT_EQ(a->bodies[0].data(), b->bodies[0].data());
  EXPECT_EQ(b->bodies[0].data(), b->bodies[1].data());
  EXPECT_EQ(a->received[0].sid, 1U);
  std::vector<std::uint64_t> sids{b->received[0].sid, b->received[1].sid};
  std::sort(sids.begin(), sids.end());
  EXPECT_EQ(sids, (std::vector<std::uint64_t>{7, 8}));
}

TEST_P(router_test, no_match_delivers_nothing) {
  auto a = std::make_shared<fake_subscriber>();
  subscribe(a, 1, "orders.*");
  EXPECT_EQ(publish(nullptr, "orders", "1"), 0U);
  EXPECT_EQ(publish(nullptr, "orders.a.b", "1"), 0U);
  EXPECT_TRUE(a->received.empty());
}

TEST_P(router_test, reply_and_headers_are_passed_through) {
  auto a = std::make_shared<fake_subscriber>();
  subscribe(a, 1, "svc");
  publish(nullptr, "svc", "null", true, "_INBOX.x.1", R"({"k":"v"})");
  ASSERT_EQ(a->received.size(), 1U);
  std::string expected;
  protocol::encode_msg_body(expected, "svc", "null", "_INBOX.x.1", R"({"k":"v"})");
  EXPECT_EQ(a->received[0].body, expected);
}

TEST_P(router_test, echo_false_skips_the_publishers_own_subscriptions) {
  auto self = std::make_shared<fake_subscriber>();
  auto other = std::make_shared<fake_subscriber>();
  subscribe(self, 1, "t");
  EXPECT_EQ(publish(self.get(), "t", "1", /*echo=*/false), 0U);
  EXPECT_TRUE(self->received.empty());
  EXPECT_EQ(publish(self.get(), "t", "1", /*echo=*/true), 1U);
  EXPECT_EQ(self->received.size(), 1U);
  subscribe(other, 2, "t");
  EXPECT_EQ(publish(self.get(), "t", "1", /*echo=*/false), 1U);
  EXPECT_EQ(other->received.size(), 1U);
}

TEST_P(router_test, queue_group_members_share_evenly_and_each_message_goes_to_one) {
  std::vector<std::shared_ptr<fake_subscriber>> members;
  for (int i = 0; i < 3; ++i) {
    members.push_back(std::make_shared<fake_subscriber>());
    subscribe(members.back(), 1, "jobs.*", "workers");
  }
  auto plain = std::make_shared<fake_subscriber>();
  subscribe(plain, 9, "jobs.*");

  for (int i = 0; i < 300; ++i)
    EXPECT_EQ(publish(nullptr, "jobs.x", "1"), 2U);

  EXPECT_EQ(plain->received.size(), 300U);
  for (const auto& m : members)
    EXPECT_EQ(m->received.size(), 100U);
}

TEST_P(router_test, same_queue_name_on_another_pattern_is_another_group) {
  auto a = std::make_shared<fake_subscriber>();
  auto b = std::make_shared<fake_subscriber>();
  subscribe(a, 1, "jobs.*", "q");
  subscribe(b, 1, "jobs.>", "q");
  EXPECT_EQ(publish(nullptr, "jobs.x", "1"), 2U);
  EXPECT_EQ(a->received.size(), 1U);
  EXPECT_EQ(b->received.size(), 1U);
}

TEST_P(router_test, queue_group_passes_over_the_publisher_when_echo_is_off) {
  auto self = std::make_shared<fake_subscriber>();
  auto other = std::make_shared<fake_subscriber>();
  subscribe(self, 1, "jobs", "q");
  subscribe(other, 1, "jobs", "q");
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(publish(self.get(), "jobs", "1", false), 1U);
  EXPECT_TRUE(self->received.empty());
  EXPECT_EQ(other->received.size(), 10U);
}

TEST_P(router_test, dead_subscriptions_in_an_older_match_are_skipped) {
  auto a = std::make_shared<fake_subscriber>();
  auto sub = subscribe(a, 1, "t");
  EXPECT_EQ(publish(nullptr, "t", "1"), 1U);  // primes the cache
  sub->live.store(false);
  EXPECT_EQ(publish(nullptr, "t", "1"), 0U);
  EXPECT_EQ(a->received.size(), 1U);
}

TEST_P(router_test, max_deliveries_expires_the_subscription_exactly_once) {
  auto a = std::make_shared<fake_subscriber>();
  auto sub = subscribe(a, 1, "t");
  EXPECT_EQ(publish(nullptr, "t", "1"), 1U);  // counted before the limit is set
  sub->max_deliveries = 3;
  EXPECT_EQ(publish(nullptr, "t", "2"), 1U);
  EXPECT_TRUE(a->expired.empty());
  EXPECT_EQ(publish(nullptr, "t", "3"), 1U);
  ASSERT_EQ(a->expired.size(), 1U);
  EXPECT_EQ(a->expired[0], sub.get());
  EXPECT_FALSE(sub->live.load());
  EXPECT_EQ(publish(nullptr, "t", "4"), 0U);
  EXPECT_EQ(a->received.size(), 3U);
}

TEST_P(router_test, each_target_is_woken_once_per_batch) {
  auto a = std::make_shared<fake_subscriber>();
  subscribe(a, 1, "t");
  subscribe(a, 2, "t");
  protocol::pub_message pub;
  pub.topic = "t";
  pub.data = "1";
  for (int i = 0; i < 50; ++i)
    router_.publish(nullptr, true, pub, batch_);
  EXPECT_EQ(a->received.size(), 100U);
  EXPECT_EQ(a->wakes, 0);
  batch_.flush();
  EXPECT_EQ(a->wakes, 1);
  EXPECT_TRUE(batch_.empty());
}

TEST_P(router_test, a_refused_message_is_not_a_delivery) {
  // Issue 9, defect 5: a message the subscriber refused (drop policy, ending connection)
  // was counted as delivered, so a request whose only responder refused it got no
  // no_responders.
  auto a = std::make_shared<fake_subscriber>();
  a->accepting = false;
  subscribe(a, 1, "t");
  EXPECT_EQ(publish(nullptr, "t", "1"), 0U);
  EXPECT_EQ(a->offered, 1);
  EXPECT_EQ(a->wakes, 0);
  EXPECT_EQ(router_.delivered(), 0U);
}

TEST_P(router_test, a_queue_group_offers_a_refused_message_to_the_next_member) {
  // Issue 9, defect 5: the chosen member's refusal lost the message for the whole group.
  auto full = std::make_shared<fake_subscriber>();
  auto free = std::make_shared<fake_subscriber>();
  full->accepting = false;
  subscribe(full, 1, "jobs", "q");
  subscribe(free, 1, "jobs", "q");
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(publish(nullptr, "jobs", "1"), 1U);
  EXPECT_TRUE(full->received.empty());
  EXPECT_EQ(free->received.size(), 10U);
  EXPECT_GE(full->offered, 5);
}

TEST_P(router_test, refused_messages_do_not_count_toward_unsub_max) {
  // Issue 9, defect 5: a refused message used one of `max`; the subscription then ended
  // having queued fewer messages than the client asked for.
  auto a = std::make_shared<fake_subscriber>();
  auto sub = subscribe(a, 1, "t");
  sub->max_deliveries = 2;
  a->accepting = false;
  EXPECT_EQ(publish(nullptr, "t", "1"), 0U);
  EXPECT_EQ(publish(nullptr, "t", "2"), 0U);
  EXPECT_EQ(sub->accepted, 0U);
  EXPECT_TRUE(sub->live.load());
  a->accepting = true;
  EXPECT_EQ(publish(nullptr, "t", "3"), 1U);
  EXPECT_TRUE(a->expired.empty());
  EXPECT_EQ(publish(nullptr, "t", "4"), 1U);
  ASSERT_EQ(a->expired.size(), 1U);
  EXPECT_FALSE(sub->live.load());
  EXPECT_EQ(publish(nullptr, "t", "5"), 0U);
  EXPECT_EQ(a->received.size(), 2U);
}

TEST_P(router_test, a_refused_last_delivery_leaves_the_subscription_live) {
  auto a = std::make_shared<fake_subscriber>();
  auto sub = subscribe(a, 1, "t");
  sub->max_deliveries = 1;
  a->accepting = false;
  EXPECT_EQ(publish(nullptr, "t", "1"), 0U);
  EXPECT_TRUE(a->expired.empty());
  EXPECT_TRUE(sub->live.load());
  a->accepting = true;
  EXPECT_EQ(publish(nullptr, "t", "2"), 1U);
  EXPECT_EQ(a->expired.size(), 1U);
}

TEST_P(router_test, queue_group_shares_stay_even_when_a_member_is_skipped) {
  // Issue 9, defect 7: with the cursor moved by one per message, the member after a
  // skipped one (here the publisher itself, echo off) got a double share: 200/100.
  std::vector<std::shared_ptr<fake_subscriber>> members;
  for (int i = 0; i < 3; ++i) {
    members.push_back(std::make_shared<fake_subscriber>());
    subscribe(members.back(), 1, "jobs", "q");
  }
  for (int i = 0; i < 300; ++i)
    EXPECT_EQ(publish(members[0].get(), "jobs", "1", /*echo=*/false), 1U);
  EXPECT_TRUE(members[0]->received.empty());
  EXPECT_EQ(members[1]->received.size(), 150U);
  EXPECT_EQ(members[2]->received.size(), 150U);
}

TEST_P(router_test, queue_group_shares_stay_even_when_a_member_reached_its_max) {
  // Issue 9, defect 7: the same with a member ended by `max` in an older (cached) match.
  std::vector<std::shared_ptr<fake_subscriber>> members;
  std::vector<std::shared_ptr<subscription>> subs;
  for (int i = 0; i < 4; ++i) {
    members.push_back(std::make_shared<fake_subscriber>());
    subs.push_back(subscribe(members.back(), 1, "jobs", "q"));
  }
  subs[1]->max_deliveries = 1;
  for (int i = 0; i < 301; ++i)
    EXPECT_EQ(publish(nullptr, "jobs", "1"), 1U);
  EXPECT_EQ(members[1]->received.size(), 1U);
  EXPECT_EQ(members[0]->received.size(), 100U);
  EXPECT_EQ(members[2]->received.size(), 100U);
  EXPECT_EQ(members[3]->received.size(), 100U);
}

}  // namespace
}  // namespace tidings::broker
