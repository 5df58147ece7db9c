#pragma once

// The subscription index: which subscriptions match a concrete topic.
//
// Structure (after NATS's sublist): a trie with one level per topic token. Each node has
// literal children in a hash map, plus a dedicated child for `*` and a dedicated slot for
// `>`, so a match walks at most two branches per level and never scans siblings. A node
// keeps the plain subscriptions of the pattern that ends there, and its queue groups
// (same queue name + same pattern) with the members in insertion order.
//
// Reads dominate (every publish), writes are rare (sub/unsub): the trie sits behind a
// std::shared_mutex. Match results are immutable and shared (shared_ptr<const>), so a
// caller may iterate one while the index changes; the subscriptions in it carry a `live`
// flag for that window.
//
// Memory: a result is never copied per topic when it need not be. Each node builds, on
// first need after a change, one result of its own subscriptions; every topic matched by
// that node alone (the common case, and `>` matching everything) gets that same instance.
// Only a topic matched by several nodes gets a merged result of its own. A bounded cache
// maps recently published topics to their result; it is bounded by the bytes it holds
// (keys, and each distinct result it holds counted once) as well as by topics, and a
// result too big for the budget is simply not cached. A change (insert or remove) empties
// the cache in O(1) under the lock, never scanning it, and bumps a generation, which
// keeps a result computed before the change from entering the cache after it. Removal is
// O(pattern length): a subscription knows its slot in its node.
//
// Thread safety: every member function may be called from any thread.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tidings/broker/subscription.hpp"

namespace tidings::broker {

// Round-robin state of one queue group; it outlives index changes so shares stay even.
struct queue_group_cursor {
  std::atomic<std::uint64_t> next{0};
};

struct match_result {
  struct group {
    std::string_view queue;                              // views the members' own queue string
    std::vector<std::shared_ptr<subscription>> members;  // in subscribe order, non-empty
    std::shared_ptr<queue_group_cursor> cursor;
  };
  std::vector<std::shared_ptr<subscription>> plain;
  std::vector<group> groups;

  bool empty() const noexcept { return plain.empty() && groups.empty(); }
};

class subscription_index {
 public:
  struct options {
    bool cache_enabled = true;
    std::size_t cache_capacity = 1024;  // topics
    // What the cache may hold: its keys and entries, plus each distinct result it refers
    // to, counted once (see cache_bytes()). A result alone above it is never cached.
    std::size_t cache_max_bytes = 4 * 1024 * 1024;
  };

  subscription_index();
  explicit subscription_index(options opts);
  ~subscription_index();
  subscription_index(const subscription_index&) = delete;
  subscription_index& operator=(const subscription_index&) = delete;

  // `sub->pattern` must be a valid pattern. Inserting the same subscription twice is a
  // caller bug.
  void insert(const std::shared_ptr<subscription>& sub);

  // Removes it (no effect if absent) and prunes nodes left empty. Does not touch `live`.
  // O(pattern length), plus dropping the cache.
  void remove(const std::shared_ptr<subscription>& sub);
  // remove() for each, under one lock and with one cache drop: for closing a connection.
  void remove_all(std::span<const std::shared_ptr<subscription>> subs);

  // Every subscription matching the concrete, valid `topic`. Never null.
  std::shared_ptr<const match_result> match(std::string_view topic) const;

  std::size_t size() const;        // subscriptions held
  std::size_t node_count() const;  // trie nodes, root excluded (pruning is testable)
  std::size_t cache_size() const;  // cached topics
  // What the cache holds by its own accounting, always <= options::cache_max_bytes:
  // per topic its key and entry, plus each distinct result's vectors, counted once.
  std::size_t cache_bytes() const;
  std::uint64_t generation() const noexcept { return generation_.load(); }

 private:
  struct node;
  struct impl;
  std::unique_ptr<impl> impl_;
  std::atomic<std::uint64_t> generation_{0};
};

}  // namespace tidings::broker
