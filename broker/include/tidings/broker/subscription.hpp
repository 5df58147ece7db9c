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

  // The rest is guarded by the owner's own lock, the one it queues messages under, so
  // counting costs no atomic and `unsub` with `max` cannot race a delivery: each sees
  // the other, whichever takes the lock first.
  //
  // Messages queued so far (refused ones do not count), and the limit set by `unsub`
  // with `max` (0: none).
  std::uint64_t accepted = 0;
  std::uint64_t max_deliveries = 0;
  // Set when the owner ends the subscription (`unsub`, or a `sub` reusing its sid): no
  // `msg` of it is queued after the `ok` of the `unsub` that ended it, so a reused sid
  // never carries a message of the subscription before.
  bool ended_by_owner = false;

  // Under the owner's lock, before queueing a message: whether this subscription may
  // take one more.
  bool may_accept() const noexcept {
    return !ended_by_owner && (max_deliveries == 0 || accepted < max_deliveries);
  }
  // Under the owner's lock, once the message is queued: counts it, and returns true if
  // it was the last the limit allows (the owner then clears `live` before the lock is
  // released, so the client cannot see the message while the sid still looks taken).
  bool count_accepted() noexcept {
    ++accepted;
    if (max_deliveries == 0 || accepted < max_deliveries) return false;
    live.store(false, std::memory_order_release);
    return true;
  }

  // The subscription_index's bookkeeping: this subscription's position in its trie node,
  // so that removing it is O(1). Read and written only under the index's exclusive lock.
  std::size_t index_slot = 0;
};

}  // namespace tidings::broker
