#include "tidings/broker/subscription_index.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <functional>
#include <mutex>
#include <random>
#include <unordered_map>
#include <utility>

#include "tidings/protocol/limits.hpp"
#include "tidings/protocol/topic.hpp"

namespace tidings::broker {
namespace {

// Lets the maps be searched with a string_view, so a match allocates no key per token.
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const noexcept {
    return std::hash<std::string_view>{}(text);
  }
};

template <typename Value>
using string_map = std::unordered_map<std::string, Value, string_hash, std::equal_to<>>;

using subscription_ptr = std::shared_ptr<subscription>;

// Erases `sub` keeping the order of the rest (queue members are served in subscribe
// order); false when it is not there.
bool erase_one(std::vector<subscription_ptr>& subs, const subscription_ptr& sub) {
  const auto it = std::find(subs.begin(), subs.end(), sub);
  if (it == subs.end()) return false;
  subs.erase(it);
  return true;
}

}  // namespace

// One trie level. The path from the root spells exactly one pattern, so the queue groups
// kept here are keyed by queue name alone: (queue, pattern) is unique per node.
struct subscription_index::node {
  struct queue_group {
    std::string queue;
    std::vector<subscription_ptr> members;  // subscribe order, never empty while stored
    std::shared_ptr<queue_group_cursor> cursor;
  };

  string_map<std::unique_ptr<node>> literals;
  std::unique_ptr<node> star;           // `*`
  std::unique_ptr<node> full_wildcard;  // `>`: a leaf, since `>` only ends a pattern
  std::vector<subscription_ptr> plain;
  // Few groups share one pattern in practice; a vector keeps them in creation order.
  std::vector<queue_group> groups;

  bool empty() const noexcept {
    return literals.empty() && !star && !full_wildcard && plain.empty() && groups.empty();
  }

  queue_group* find_group(std::string_view queue) noexcept {
    for (auto& group : groups) {
      if (group.queue == queue) return &group;
    }
    return nullptr;
  }
};

// Lock order: trie_mutex, then cache_mutex. match() never holds both at once.
struct subscription_index::impl {
  explicit impl(options chosen) : opts(chosen) {}

  // One cached result: `result` plus its position in `cache_keys`, so that random
  // eviction and targeted erasure are both O(1).
  struct cache_entry {
    std::shared_ptr<const match_result> result;
    std::size_t slot;
  };

  const options opts;
  // Every empty result (cached or not) is this one instance, so cached topics that match
  // nothing hold no result of their own.
  const std::shared_ptr<const match_result> empty_result = std::make_shared<const match_result>();

  mutable std::shared_mutex trie_mutex;
  node root;
  std::size_t subscription_count = 0;
  std::size_t node_count = 0;

  mutable std::shared_mutex cache_mutex;
  string_map<cache_entry> cache;
  // The keys of `cache` (stable: unordered_map nodes do not move), densely packed so a
  // victim can be drawn uniformly. Guarded by cache_mutex, like `cache` and `rng`.
  std::vector<const std::string*> cache_keys;
  std::minstd_rand rng{0x7d1d};

  bool caching() const noexcept { return opts.cache_enabled && opts.cache_capacity > 0; }

  // Appends what `n` holds to `out`: the node is a matching pattern's end.
  static void collect(const node& n, match_result& out) {
    out.plain.insert(out.plain.end(), n.plain.begin(), n.plain.end());
    for (const auto& group : n.groups) {
      // The view points into a member's own queue string, which `out` keeps alive.
      out.groups.push_back(
          {std::string_view(group.members.front()->queue), group.members, group.cursor});
    }
  }

  // Visits every node whose pattern matches the tokens still in `rest`. Recursion depth is
  // bounded by the trie's depth, which valid (<= 256 byte) patterns keep under 129.
  static void walk(const node& n, protocol::token_reader rest, bool wildcards_allowed,
                   match_result& out) {
    std::string_view token;
    if (!rest.next(token)) {
      collect(n, out);
      return;
    }
    // `token` is still unconsumed here, so a `>` child has its one-or-more tokens.
    if (wildcards_allowed && n.full_wildcard) collect(*n.full_wildcard, out);
    if (const auto it = n.literals.find(token); it != n.literals.end()) {
      walk(*it->second, rest, true, out);
    }
    if (wildcards_allowed && n.star) walk(*n.star, rest, true, out);
  }

  std::shared_ptr<const match_result> compute(std::string_view topic) const {
    auto result = std::make_shared<match_result>();
    // Wildcards in the first token stay clear of the server's `$` topics (PROTOCOL.md 5).
    walk(root, protocol::token_reader(topic), !protocol::is_reserved_topic(topic), *result);
    if (result->empty()) return empty_result;
    return result;
  }

  std::shared_ptr<const match_result> cache_find(std::string_view topic) const {
    std::shared_lock lock(cache_mutex);
    const auto it = cache.find(topic);
    if (it == cache.end()) return nullptr;
    return it->second.result;
  }

  // Caller holds cache_mutex exclusively. `topic` may view the key being erased.
  void cache_erase(std::string_view topic) {
    const auto it = cache.find(topic);
    if (it == cache.end()) return;
    const std::size_t slot = it->second.slot;
    const std::size_t last = cache_keys.size() - 1;
    if (slot != last) {
      const std::string* moved = cache_keys[last];
      cache_keys[slot] = moved;
      if (const auto entry = cache.find(std::string_view(*moved)); entry != cache.end()) {
        entry->second.slot = slot;
      }
    }
    cache_keys.pop_back();
    cache.erase(it);
  }

  // Eviction: one uniformly random entry when full. O(1), keeps the cache full (unlike
  // clearing half of it, which causes a burst of misses), and a hot topic evicted by
  // chance costs one recomputation before it is back.
  void cache_store(std::string_view topic, std::shared_ptr<const match_result> result) {
    if (cache.find(topic) != cache.end()) return;  // a concurrent miss stored it first
    if (cache.size() >= opts.cache_capacity) {
      std::uniform_int_distribution<std::size_t> pick(0, cache_keys.size() - 1);
      cache_erase(*cache_keys[pick(rng)]);
    }
    const auto [it, inserted] =
        cache.emplace(std::string(topic), cache_entry{std::move(result), cache_keys.size()});
    assert(inserted);
    cache_keys.push_back(&it->first);
  }

  // Drops the results a change to `pattern` makes stale: exactly the cached topics that
  // the pattern matches. Caller holds trie_mutex exclusively (so no new computation can
  // race in between the change and this sweep).
  void invalidate(std::string_view pattern) {
    if (!caching()) return;
    std::unique_lock lock(cache_mutex);
    for (std::size_t slot = 0; slot < cache_keys.size();) {
      const std::string& topic = *cache_keys[slot];
      if (protocol::pattern_matches(pattern, topic)) {
        // The last key moves into `slot`: look at the same slot again.
        cache_erase(topic);
      } else {
        ++slot;
      }
    }
  }

  // Returns the pattern's end node, creating the path. Caller holds trie_mutex exclusively.
  node& make_path(std::string_view pattern) {
    node* n = &root;
    protocol::token_reader tokens(pattern);
    std::string_view token;
    while (tokens.next(token)) {
      std::unique_ptr<node>* child = nullptr;
      if (token == "*") {
        child = &n->star;
      } else if (token == ">") {
        child = &n->full_wildcard;
      } else {
        auto it = n->literals.find(token);
        if (it == n->literals.end()) it = n->literals.emplace(std::string(token), nullptr).first;
        child = &it->second;
      }
      if (!*child) {
        *child = std::make_unique<node>();
        ++node_count;
      }
      n = child->get();
    }
    return *n;
  }

  // Removes `sub` from its pattern's node and prunes the nodes left empty, bottom up.
  // False if it was not there. Caller holds trie_mutex exclusively.
  bool erase(const subscription_ptr& sub) {
    // The path, root first, and the token leading to each node; a valid pattern has at
    // most 128 tokens.
    constexpr std::size_t max_depth = protocol::max_topic_size / 2 + 2;
    std::array<node*, max_depth> path{};
    std::array<std::string_view, max_depth> path_tokens{};
    std::size_t depth = 0;
    path[depth++] = &root;
    protocol::token_reader tokens(sub->pattern);
    std::string_view token;
    while (tokens.next(token)) {
      node* n = path[depth - 1];
      node* child = nullptr;
      if (token == "*") {
        child = n->star.get();
      } else if (token == ">") {
        child = n->full_wildcard.get();
      } else if (const auto it = n->literals.find(token); it != n->literals.end()) {
        child = it->second.get();
      }
      if (child == nullptr || depth == max_depth) return false;
      path_tokens[depth] = token;  // views sub->pattern, which the caller keeps alive
      path[depth++] = child;
    }

    node& end = *path[depth - 1];
    if (sub->queue.empty()) {
      if (!erase_one(end.plain, sub)) return false;
    } else {
      node::queue_group* group = end.find_group(sub->queue);
      if (group == nullptr || !erase_one(group->members, sub)) return false;
      if (group->members.empty()) {
        // The cursor goes with the group: a group formed later starts afresh.
        end.groups.erase(end.groups.begin() + (group - end.groups.data()));
      }
    }

    // Walk the path back up, detaching each empty node from its parent.
    for (std::size_t i = depth - 1; i > 0 && path[i]->empty(); --i) {
      node& parent = *path[i - 1];
      const std::string_view key = path_tokens[i];
      if (key == "*") {
        parent.star.reset();
      } else if (key == ">") {
        parent.full_wildcard.reset();
      } else if (const auto it = parent.literals.find(key); it != parent.literals.end()) {
        parent.literals.erase(it);
      }
      --node_count;
    }
    return true;
  }
};

subscription_index::subscription_index() : subscription_index(options{}) {}

subscription_index::subscription_index(options opts) : impl_(std::make_unique<impl>(opts)) {}

subscription_index::~subscription_index() = default;

void subscription_index::insert(const std::shared_ptr<subscription>& sub) {
  assert(sub && protocol::is_valid_pattern(sub->pattern));
  std::unique_lock lock(impl_->trie_mutex);
  node& end = impl_->make_path(sub->pattern);
  if (sub->queue.empty()) {
    end.plain.push_back(sub);
  } else if (node::queue_group* group = end.find_group(sub->queue)) {
    group->members.push_back(sub);
  } else {
    end.groups.push_back({sub->queue, {sub}, std::make_shared<queue_group_cursor>()});
  }
  ++impl_->subscription_count;
  // Bumped before the sweep: a match computed before this change either sees the new
  // generation and stays out of the cache, or got in first and is swept below.
  generation_.fetch_add(1);
  impl_->invalidate(sub->pattern);
}

void subscription_index::remove(const std::shared_ptr<subscription>& sub) {
  if (!sub) return;
  std::unique_lock lock(impl_->trie_mutex);
  if (!impl_->erase(sub)) return;
  --impl_->subscription_count;
  generation_.fetch_add(1);
  impl_->invalidate(sub->pattern);
}

std::shared_ptr<const match_result> subscription_index::match(std::string_view topic) const {
  if (!impl_->caching()) {
    std::shared_lock lock(impl_->trie_mutex);
    return impl_->compute(topic);
  }
  if (auto cached = impl_->cache_find(topic)) return cached;

  std::shared_ptr<const match_result> result;
  std::uint64_t computed_at = 0;
  {
    std::shared_lock lock(impl_->trie_mutex);
    // Read under the trie lock: writers bump it under the exclusive lock, so this is the
    // generation of exactly the trie state the result is computed from.
    computed_at = generation_.load();
    result = impl_->compute(topic);
  }
  std::unique_lock lock(impl_->cache_mutex);
  // A change since then may already have swept this topic: a stale result must not
  // enter the cache after that sweep.
  if (generation_.load() == computed_at) impl_->cache_store(topic, result);
  return result;
}

std::size_t subscription_index::size() const {
  std::shared_lock lock(impl_->trie_mutex);
  return impl_->subscription_count;
}

std::size_t subscription_index::node_count() const {
  std::shared_lock lock(impl_->trie_mutex);
  return impl_->node_count;
}

std::size_t subscription_index::cache_size() const {
  std::shared_lock lock(impl_->cache_mutex);
  return impl_->cache.size();
}

}  // namespace tidings::broker
