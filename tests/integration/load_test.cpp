// A thousand concurrent connections that all publish and subscribe: every message must
// arrive exactly once, at the right subscription, in each publisher's order.

#include "conformance.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace tidings::test {
namespace {

constexpr int clients = 1000;
constexpr int direct_messages = 4;  // each client to its neighbour's own topic
constexpr int shared_every = 25;    // every 25th client publishes once to the shared topic
constexpr int shared_publishers = clients / shared_every;
constexpr int queued_messages = 3000;  // to a queue group that every client joins

// Each connection takes a descriptor on both ends, in this one process.
void raise_descriptor_limit(rlim_t needed) {
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_cur >= needed) return;
  ASSERT_GE(limit.rlim_max, needed) << "the hard RLIMIT_NOFILE is too low for this test";
  limit.rlim_cur = needed;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
}

std::string own_topic(int i) {
  return "load.client." + std::to_string(i);
}

TEST(Load, ThousandConnectionsPublishAndSubscribe) {
  raise_descriptor_limit(2 * clients + 256);
  test_broker broker;

  std::vector<raw_client> conns;
  conns.reserve(clients);
  for (int i = 0; i < clients; ++i)
    conns.emplace_back(broker.port(), std::chrono::seconds(30));
  std::set<std::int64_t> ids;
  for (auto& c : conns)
    ids.insert(c.read_info(std::chrono::seconds(30))["client_id"].get<std::int64_t>());
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(clients));
  EXPECT_EQ(broker.server().connections(), static_cast<std::uint32_t>(clients));

  // Everyone subscribes: its own topic, the shared one, and the queue group.
  for (int i = 0; i < clients; ++i) {
    auto& c = conns[static_cast<std::size_t>(i)];
    c.send_raw(
        framed(json({{"op", "sub"}, {"sid", 1}, {"topic", own_topic(i)}, {"id", 1}}).dump()) +
        framed(R"({"op":"sub","sid":2,"topic":"load.all","id":2})") +
        framed(R"({"op":"sub","sid":3,"topic":"load.work","queue":"workers","id":3})"));
  }
  for (auto& c : conns) {
    for (int id = 1; id <= 3; ++id) {
      ASSERT_TRUE(is_answer(next_answer(c), "ok", id));
    }
  }

  // Everyone publishes at once (one write each), before anyone reads.
  for (int i = 0; i < clients; ++i) {
    std::string batch;
    for (int n = 0; n < direct_messages; ++n) {
      batch += framed(
          json({{"op", "pub"}, {"topic", own_topic((i + 1) % clients)}, {"data", {i, n}}}).dump());
    }
    if (i % shared_every == 0) {
      batch += framed(json({{"op", "pub"}, {"topic", "load.all"}, {"data", {i, 0}}}).dump());
    }
    if (i == 0) {
      for (int n = 0; n < queued_messages; ++n) {
        batch += framed(json({{"op", "pub"}, {"topic", "load.work"}, {"data", {0, n}}}).dump());
      }
    }
    conns[static_cast<std::size_t>(i)].send_raw(batch);
  }

  // Two rounds of barriers: after the first, every publish has been handed to its
  // subscribers' queues (each connection's pong proves its own pubs were processed); the
  // second round's pongs then come after every msg.
  std::vector<std::vector<json>> received(clients);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < clients; ++i) {
      auto frames = conns[static_cast<std::size_t>(i)].sync(std::chrono::seconds(30));
      auto& into = received[static_cast<std::size_t>(i)];
      into.insert(into.end(), frames.begin(), frames.end());
    }
  }

  std::vector<int> work_taken;
  for (int i = 0; i < clients; ++i) {
    const int sender = (i + clients - 1) % clients;
    int next_direct = 0;
    std::set<int> shared_from;
    for (const auto& frame : received[static_cast<std::size_t>(i)]) {
      ASSERT_EQ(frame.value("op", ""), "msg") << frame.dump();
      const auto sid = frame["sid"].get<int>();
      const int from = frame["data"][0].get<int>();
      const int n = frame["data"][1].get<int>();
      if (sid == 1) {
        EXPECT_EQ(frame["topic"], own_topic(i));
        EXPECT_EQ(from, sender);
        EXPECT_EQ(n, next_direct) << "client " << i << ": lost, duplicated or reordered";
        ++next_direct;
      } else if (sid == 2) {
        EXPECT_EQ(frame["topic"], "load.all");
        EXPECT_EQ(from % shared_every, 0);
        EXPECT_TRUE(shared_from.insert(from).second) << "client " << i << ": duplicate";
      } else {
        ASSERT_EQ(sid, 3);
        EXPECT_EQ(frame["topic"], "load.work");
        work_taken.push_back(n);
      }
    }
    EXPECT_EQ(next_direct, direct_messages) << "client " << i;
    EXPECT_EQ(shared_from.size(), static_cast<std::size_t>(shared_publishers)) << "client " << i;
  }
  // The queue group: each message went to exactly one of the thousand members.
  std::sort(work_taken.begin(), work_taken.end());
  std::vector<int> all(queued_messages);
  for (int n = 0; n < queued_messages; ++n)
    all[static_cast<std::size_t>(n)] = n;
  EXPECT_EQ(work_taken, all);
  EXPECT_EQ(broker.server().connections(), static_cast<std::uint32_t>(clients));
}

}  // namespace
}  // namespace tidings::test
