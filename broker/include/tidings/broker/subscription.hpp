#pragma once

// One live subscription, shared by the index (which finds it for a topic) and the session
// that made it (which ends it). Immutable but for its delivery counters and `live` flag.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace tidings::broker {

class subscriber;

struct subscription {
  subscription(std::shared_ptr<subscriber> owner_, std::uint64_t sid_, std::string pattern_,
               std::string queue_)
      : owner(std::move(owner_)),
        sid(sid_),
        pattern(std::move(pattern_)),
        queue(std::move(queue_)) {}

  // Non-null except in tests of the index alone. The cycle owner -> its subscriptions
  // -> owner is broken by the owner's close(), which removes them from the index.
  const std::shared_ptr<subscriber> owner;
  const std::uint64_t sid;
  const std::string pattern;
  const std::string queue;  // empty: a plain subscription

  // Cleared when the subscription ends; a router holding an older match skips it.
  std::atomic<bool> live{true};
  // Deliveries made so far, and the limit set by `unsub` with `max` (0: none). A router
  // delivers only while fetch_add(1) on `delivered` stays below the limit.
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> max_deliveries{0};

  // The subscription_index's bookkeeping: this subscription's position in its trie node,
  // so that removing it is O(1). Read and written only under the index's exclusive lock.
  std::size_t index_slot = 0;
};

}  // namespace tidings::broker
