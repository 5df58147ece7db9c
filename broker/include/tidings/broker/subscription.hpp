#pragma once

// One live subscription, shared by the index (which finds it for a topic) and the session
// that made it (which ends it). Immutable but for its delivery counters and `live` flag.

#include <atomic>
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
  // Deliveries accepted so far (plus, for an instant, claims being tried), and the limit
  // set by `unsub` with `max` (0: none). A router claims a delivery with fetch_add(1) and
  // gives the claim back if the owner refuses the message, so only accepted deliveries
  // count. Both sides use seq_cst: `unsub` stores the limit then reads the count, a
  // router adds to the count then reads the limit; with anything weaker both could read
  // the old value and neither would end the subscription.
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> max_deliveries{0};

  // Set under the owner's own lock when the owner ends the subscription (`unsub`, or a
  // `sub` reusing its sid). The owner checks it under that lock before queueing, so no
  // `msg` of this subscription follows the `ok` of the `unsub` that ended it, and a
  // reused sid never carries a message of the subscription before. A plain bool: only
  // the owner reads or writes it, always under its lock.
  bool ended_by_owner = false;
};

}  // namespace tidings::broker
