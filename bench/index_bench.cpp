// Micro-benchmarks of the subscription index: match() is on every publish, so a cache hit
// must stay one shared-lock hash lookup; a miss, and sub/unsub, are what the cache's
// design trades against it. Only the index's public API is used, so the same file builds
// against older versions of it for before/after figures.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tidings/broker/subscription.hpp"
#include "tidings/broker/subscription_index.hpp"

namespace {

using tidings::broker::subscription;
using tidings::broker::subscription_index;
using sub_ptr = std::shared_ptr<subscription>;

sub_ptr make_sub(std::uint64_t sid, std::string pattern, std::string queue = {}) {
  return std::make_shared<subscription>(nullptr, sid, std::move(pattern), std::move(queue));
}

// 1,000 exact subscriptions `orders.N.created`, a few wildcards beside them, and a queue
// group: a modest broker.
std::vector<sub_ptr> populate(subscription_index& index) {
  std::vector<sub_ptr> subs;
  for (std::uint64_t i = 0; i < 1000; ++i)
    subs.push_back(make_sub(i, "orders." + std::to_string(i) + ".created"));
  subs.push_back(make_sub(5000, "audit.>"));
  subs.push_back(make_sub(5001, "*.*.updated"));
  subs.push_back(make_sub(5002, "billing.*", "workers"));
  subs.push_back(make_sub(5003, "billing.*", "workers"));
  for (const auto& sub : subs)
    index.insert(sub);
  return subs;
}

std::vector<std::string> topics(std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back("orders." + std::to_string(i) + ".created");
  return out;
}

// A cache hit: 512 hot topics, all cached, one exact match each.
void BM_IndexMatchHit(benchmark::State& state) {
  subscription_index index;
  const auto subs = populate(index);
  const auto hot = topics(512);
  for (const auto& topic : hot)
    index.match(topic);
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(index.match(hot[i++ & 511]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IndexMatchHit);

// A hit on a topic that 20,000 subscriptions to `>` match (issue 9's scenario 2).
void BM_IndexMatchHitHuge(benchmark::State& state) {
  subscription_index index;
  std::vector<sub_ptr> subs;
  for (std::uint64_t i = 0; i < 20'000; ++i) {
    subs.push_back(make_sub(i, ">"));
    index.insert(subs.back());
  }
  const auto hot = topics(512);
  for (const auto& topic : hot)
    index.match(topic);
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(index.match(hot[i++ & 511]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IndexMatchHitHuge);

// No cache: every match walks the trie. Arg 0: one matching node (exact); arg 1: two
// nodes (exact plus `*.*.updated`, a merged result).
void BM_IndexMatchNoCache(benchmark::State& state) {
  subscription_index index(subscription_index::options{false, 0});
  const auto subs = populate(index);
  if (state.range(0) == 1) {
    for (std::uint64_t i = 0; i < 1000; ++i) {
      auto sub = make_sub(10'000 + i, "orders." + std::to_string(i) + ".*");
      index.insert(sub);
    }
  }
  const auto hot = topics(512);
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(index.match(hot[i++ & 511]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IndexMatchNoCache)->Arg(0)->Arg(1);

// A subscribe and an unsubscribe with the cache full of 1,024 topics, each then matched
// again: the cost of churn to publishers.
void BM_IndexSubUnsubThenMatch(benchmark::State& state) {
  subscription_index index;
  const auto subs = populate(index);
  const auto hot = topics(1024);
  for (const auto& topic : hot)
    index.match(topic);
  std::uint64_t sid = 100'000;
  std::size_t i = 0;
  for (auto _ : state) {
    ++sid;
    auto sub = make_sub(sid, "inbox." + std::to_string(sid));
    index.insert(sub);
    index.remove(sub);
    for (int k = 0; k < 16; ++k)
      benchmark::DoNotOptimize(index.match(hot[i++ & 1023]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IndexSubUnsubThenMatch);

}  // namespace

BENCHMARK_MAIN();
