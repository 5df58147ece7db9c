// README limits table: the match cache is bounded by what it holds. Issue 9, scenario 2:
// one connection with 20,000 subscriptions to `>` (`echo: false`, so nothing is delivered)
// publishes to 1,500 distinct topics. Each topic used to cache its own copy of the
// 20,000-entry result (1,024 of them: over 300 MiB); now every topic shares the `>` node's
// one result, and whatever the cache holds stays within its byte budget.

#include "conformance.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdio>
#include <string>

#include "live_heap.hpp"

namespace tidings::test {
namespace {

constexpr std::size_t mib = 1024 * 1024;

TEST(MatchCacheMemory, WildcardSubscriptionsAndDistinctTopicsStayBounded) {
  constexpr std::size_t subscriptions = 20'000;
  constexpr int topics = 1'500;
  const broker::config settings = test_broker::default_settings();
  test_broker broker(settings);
  raw_client client(broker.port());
  client.read_info();
  ASSERT_TRUE(is_answer(request(client, {{"op", "connect"}, {"echo", false}, {"id", 1}}), "ok", 1));
  ASSERT_TRUE(client.sync().empty());
  const std::size_t before = live_heap_bytes();

  // Without ids: no `ok` each, and the barrier below proves every one was processed.
  for (std::size_t sid = 1; sid <= subscriptions; ++sid) {
    client.send_frame(R"({"op":"sub","sid":)" + std::to_string(sid) + R"(,"topic":">"})");
  }
  ASSERT_TRUE(client.sync(30s).empty());
  const std::size_t subscribed = live_heap_bytes();

  for (int i = 0; i < topics; ++i) {
    client.send_frame(R"({"op":"pub","topic":"scenario.two.)" + std::to_string(i) +
                      R"(","data":1})");
  }
  ASSERT_TRUE(client.sync(30s).empty());  // echo is off: nothing delivered, no err
  const std::size_t after = live_heap_bytes();

  // What the broker may hold: the cache's whole budget, the `>` node's one shared result
  // and, generously, 1 KiB per subscription (the subscription, its place in the session's
  // map and in the index), plus a few MiB of noise (loop buffers, the allocator).
  const std::size_t cache_budget = settings.match_cache;  // --match-cache
  const std::size_t bound = cache_budget + subscriptions * (16 + 1024) + 4 * mib;
  const std::size_t growth = after > before ? after - before : 0;
  EXPECT_LE(growth, bound) << "subscribing grew the heap by "
                           << (subscribed > before ? subscribed - before : 0) / 1024
                           << " KiB, publishing by "
                           << (after > subscribed ? after - subscribed : 0) / 1024 << " KiB";
  EXPECT_LT(bound, 64 * mib);  // the bound itself is far below the old ~320 MiB
  std::printf("[ measure  ] live heap growth %zu KiB (bound %zu KiB)\n", growth / 1024,
              bound / 1024);
}

}  // namespace
}  // namespace tidings::test
