#include "tidings/broker/subscription_index.hpp"

#include <algorithm>
#include <array>
#include <atomic>
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

}  // namespace

// One trie level. The path from the root spells exactly one pattern, so the queue groups
// kept here are keyed by queue name alone: (queue, pattern) is unique per node.
struct subscription_index::node {
  struct queue_group {
    // Subscribe order, which round robin follows. A member that left is a null hole until
    // the holes outnumber the members and the vector is compacted, so removal is O(1)
    // amortized and the order survives it.
    std::vector<subscription_ptr> members;
    std::size_t live = 0;  // non-null members; the group is erased at 0
    std::shared_ptr<queue_group_cursor> cursor;
  };

  string_map<std::unique_ptr<node>> literals;
  std::unique_ptr<node> star;           // `*`
  std::unique_ptr<node> full_wildcard;  // `>`: a leaf, since `>` only ends a pattern
  // In no particular order: removal moves the last one into the hole.
  std::vector<subscription_ptr> plain;
  string_map<queue_group> groups;  // by queue name
  // What this node alone contributes to a match, built on the first match that needs it
  // after a change and shared by every topic it matches. Writers reset it under the
  // exclusive trie lock; readers build it under the shared trie lock plus snapshot_mutex
  // and then set `snapshot_ready` (release), after which readers copy it without the
  // mutex (acquire): it stays unchanged until the next writer.
  mutable std::shared_ptr<const match_result> snapshot;
  mutable std::atomic<bool> snapshot_ready{false};

  void forget_snapshot() noexcept {
    snapshot_ready.store(false, std::memory_order_relaxed);  // under the exclusive lock
    snapshot.reset();
  }

  bool holds_subscriptions() const noexcept { return !plain.empty() || !groups.empty(); }
  bool empty() const noexcept {
    return literals.empty() && !star && !full_wildcard && !holds_subscriptions();
  }
};

namespace {

// The bytes a result's own allocations take (the object with its control block, and its
// vectors' capacity); the subscriptions it points to belong to the index, not to it.
std::size_t result_bytes(const match_result& result) noexcept {
  constexpr std::size_t control_block = 2 * sizeof(void*) + 2 * sizeof(int);
  std::size_t bytes = sizeof(match_result) + control_block +
                      result.plain.capacity() * sizeof(subscription_ptr) +
                      result.groups.capacity() * sizeof(match_result::group);
  for (const auto& group : result.groups)
    bytes += group.members.capacity() * sizeof(subscription_ptr);
  return bytes;
}

}  // namespace

// Lock order: trie_mutex, then cache_mutex, then snapshot_mutex. match() holds the trie
// lock and snapshot_mutex together, never the trie lock and the cache lock.
struct subscription_index::impl {
  explicit impl(options chosen) : opts(chosen) {}

  // One cached topic: its result, its position in `keys` (so that random eviction is
  // O(1)) and what the entry costs beyond its result.
  struct cache_entry {
    std::shared_ptr<const match_result> result;
    std::size_t slot;
    std::size_t bytes;
  };
  // One distinct result the cache holds: how many topics refer to it and what it costs.
  struct result_use {
    std::size_t topics;
    std::size_t bytes;
  };

  // Everything the cache holds, swappable as a whole so that a change empties it in O(1)
  // and the old contents are freed after the locks are released.
  struct cache_table {
    string_map<cache_entry> entries;
    // The keys of `entries` (stable: unordered_map nodes do not move), densely packed so
    // a victim can be drawn uniformly.
    std::vector<const std::string*> keys;
    std::unordered_map<const match_result*, result_use> results;
    std::size_t bytes = 0;

    void swap(cache_table& other) noexcept {
      entries.swap(other.entries);
      keys.swap(other.keys);
      results.swap(other.results);
      std::swap(bytes, other.bytes);
    }
  };

  // The bytes one cached topic costs without its result: the key (beyond the string's
  // inline buffer), the hash node with its bucket, and its slot in `keys`.
  static std::size_t entry_bytes(std::string_view topic) noexcept {
    constexpr std::size_t inline_chars = 15;
    const std::size_t key_heap = topic.size() > inline_chars ? topic.size() + 1 : 0;
    return key_heap + sizeof(std::pair<const std::string, cache_entry>) + 3 * sizeof(void*) +
           sizeof(std::size_t) + sizeof(const std::string*);
  }
  // The bytes a distinct result costs the cache: itself and its bookkeeping node.
  static std::size_t held_result_bytes(const match_result& result) noexcept {
    return result_bytes(result) + sizeof(std::pair<const match_result* const, result_use>) +
           3 * sizeof(void*);
  }

  const options opts;
  // Every empty result (cached or not) is this one instance, so cached topics that match
  // nothing hold no result of their own; the cache counts it as free.
  const std::shared_ptr<const match_result> empty_result = std::make_shared<const match_result>();

  mutable std::shared_mutex trie_mutex;
  node root;
  std::size_t subscription_count = 0;
  std::size_t node_count = 0;
  // Guards the nodes' `snapshot` while readers share trie_mutex.
  mutable std::mutex snapshot_mutex;

  mutable std::shared_mutex cache_mutex;
  cache_table cache;  // guarded by cache_mutex, like `rng`
  std::minstd_rand rng{0x7d1d};

  bool caching() const noexcept {
    return opts.cache_enabled && opts.cache_capacity > 0 && opts.cache_max_bytes > 0;
  }

  // The nodes a topic matches: a few in practice, so they stay on the stack and a miss on a
  // topic matched by one node allocates nothing once that node's snapshot exists.
  class hit_list {
   public:
    void push_back(const node* n) {
      if (size_ < inline_capacity) {
        inline_[size_] = n;
      } else {
        if (size_ == inline_capacity) overflow_.assign(inline_.begin(), inline_.end());
        overflow_.push_back(n);
      }
      ++size_;
    }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const node* const* begin() const noexcept {
      return size_ <= inline_capacity ? inline_.data() : overflow_.data();
    }
    const node* const* end() const noexcept { return begin() + size_; }

   private:
    static constexpr std::size_t inline_capacity = 8;
    std::array<const node*, inline_capacity> inline_{};
    std::vector<const node*> overflow_;
    std::size_t size_ = 0;
  };

  // Visits every node whose pattern matches the tokens still in `rest` and holds
  // subscriptions, in a fixed order. Recursion depth is bounded by the trie's depth, which
  // valid (<= 256 byte) patterns keep under 129. A node is reached by one path only, so
  // it is visited at most once.
  static void walk(const node& n, protocol::token_reader rest, bool wildcards_allowed,
                   hit_list& hits) {
    std::string_view token;
    if (!rest.next(token)) {
      if (n.holds_subscriptions()) hits.push_back(&n);
      return;
    }
    // `token` is still unconsumed here, so a `>` child has its one-or-more tokens.
    if (wildcards_allowed && n.full_wildcard && n.full_wildcard->holds_subscriptions()) {
      hits.push_back(n.full_wildcard.get());
    }
    if (const auto it = n.literals.find(token); it != n.literals.end()) {
      walk(*it->second, rest, true, hits);
    }
    if (wildcards_allowed && n.star) walk(*n.star, rest, true, hits);
  }

  // Appends what `n` holds to `out`, members in subscribe order.
  static void collect(const node& n, match_result& out) {
    out.plain.insert(out.plain.end(), n.plain.begin(), n.plain.end());
    for (const auto& [queue, group] : n.groups) {
      match_result::group copy;
      copy.members.reserve(group.live);
      for (const auto& member : group.members) {
        if (member) copy.members.push_back(member);
      }
      // The view points into a member's own queue string, which `out` keeps alive.
      copy.queue = std::string_view(copy.members.front()->queue);
      copy.cursor = group.cursor;
      out.groups.push_back(std::move(copy));
    }
  }

  // The node's own result, built once per change of the node. Caller shares trie_mutex.
  std::shared_ptr<const match_result> snapshot_of(const node& n) const {
    if (n.snapshot_ready.load(std::memory_order_acquire)) return n.snapshot;
    std::lock_guard lock(snapshot_mutex);
    if (!n.snapshot_ready.load(std::memory_order_relaxed)) {
      auto result = std::make_shared<match_result>();
      result->plain.reserve(n.plain.size());
      result->groups.reserve(n.groups.size());
      collect(n, *result);
      n.snapshot = std::move(result);
      n.snapshot_ready.store(true, std::memory_order_release);
    }
    return n.snapshot;
  }

  // Caller shares trie_mutex.
  std::shared_ptr<const match_result> compute(std::string_view topic) const {
    hit_list hits;
    // Wildcards in the first token stay clear of the server's `$` topics (PROTOCOL.md 5).
    walk(root, protocol::token_reader(topic), !protocol::is_reserved_topic(topic), hits);
    if (hits.empty()) return empty_result;
    if (hits.size() == 1) return snapshot_of(**hits.begin());
    std::size_t plain = 0;
    std::size_t groups = 0;
    for (const node* n : hits) {
      plain += n->plain.size();
      groups += n->groups.size();
    }
    auto result = std::make_shared<match_result>();
    result->plain.reserve(plain);
    result->groups.reserve(groups);
    for (const node* n : hits)
      collect(*n, *result);
    return result;
  }

  std::shared_ptr<const match_result> cache_find(std::string_view topic) const {
    std::shared_lock lock(cache_mutex);
    const auto it = cache.entries.find(topic);
    if (it == cache.entries.end()) return nullptr;
    return it->second.result;
  }

  // What storing `result` for `topic` would add to cache.bytes. Caller holds cache_mutex.
  std::size_t cost_of(std::string_view topic, const match_result& result) const {
    std::size_t bytes = entry_bytes(topic);
    if (&result != empty_result.get() && !cache.results.contains(&result)) {
      bytes += held_result_bytes(result);
    }
    return bytes;
  }

  // Caller holds cache_mutex exclusively. `topic` may view the key being erased.
  void cache_erase(std::string_view topic) {
    const auto it = cache.entries.find(topic);
    if (it == cache.entries.end()) return;
    cache_entry& entry = it->second;
    const std::size_t slot = entry.slot;
    const std::size_t last = cache.keys.size() - 1;
    if (slot != last) {
      const std::string* moved = cache.keys[last];
      cache.keys[slot] = moved;
      if (const auto other = cache.entries.find(std::string_view(*moved));
          other != cache.entries.end()) {
        other->second.slot = slot;
      }
    }
    cache.keys.pop_back();
    cache.bytes -= entry.bytes;
    if (const auto use = cache.results.find(entry.result.get()); use != cache.results.end()) {
      if (--use->second.topics == 0) {
        cache.bytes -= use->second.bytes;
        cache.results.erase(use);
      }
    }
    cache.entries.erase(it);
  }

  // Eviction: uniformly random entries until the new one fits. O(1) each, keeps the cache
  // full (unlike clearing half of it, which causes a burst of misses), and a hot topic
  // evicted by chance costs one recomputation before it is back. The caller checked that
  // the result fits an empty cache. Caller holds cache_mutex exclusively.
  void cache_store(std::string_view topic, std::shared_ptr<const match_result> result) {
    if (cache.entries.find(topic) != cache.entries.end()) return;  // a concurrent miss won
    while (!cache.keys.empty() && (cache.entries.size() >= opts.cache_capacity ||
                                   cache.bytes + cost_of(topic, *result) > opts.cache_max_bytes)) {
      std::uniform_int_distribution<std::size_t> pick(0, cache.keys.size() - 1);
      cache_erase(*cache.keys[pick(rng)]);
    }
    const std::size_t bytes = entry_bytes(topic);
    if (result != empty_result) {
      const auto [use, fresh] = cache.results.try_emplace(result.get(), result_use{0, 0});
      if (fresh) {
        use->second.bytes = held_result_bytes(*result);
        cache.bytes += use->second.bytes;
      }
      ++use->second.topics;
    }
    cache.bytes += bytes;
    const auto [it, inserted] = cache.entries.emplace(
        std::string(topic), cache_entry{std::move(result), cache.keys.size(), bytes});
    assert(inserted);
    cache.keys.push_back(&it->first);
  }

  // After a change: every cached result may be stale. Empties the cache in O(1) and hands
  // its old contents to the caller, who frees them once the locks are released. The
  // cost of freeing is that of the misses that filled it, so a change stays O(1)
  // amortized. Caller holds trie_mutex exclusively and has bumped the generation.
  void drop_cache(cache_table& dropped) {
    if (!caching()) return;
    std::unique_lock lock(cache_mutex);
    if (cache.entries.empty()) return;
    dropped.swap(cache);
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

  // Caller holds trie_mutex exclusively.
  void add(const subscription_ptr& sub) {
    node& end = make_path(sub->pattern);
    end.forget_snapshot();
    if (sub->queue.empty()) {
      sub->index_slot = end.plain.size();
      end.plain.push_back(sub);
    } else {
      auto it = end.groups.find(std::string_view(sub->queue));
      if (it == end.groups.end()) {
        it = end.groups.emplace(sub->queue, node::queue_group{}).first;
        it->second.cursor = std::make_shared<queue_group_cursor>();
      }
      node::queue_group& group = it->second;
      sub->index_slot = group.members.size();
      group.members.push_back(sub);
      ++group.live;
    }
    ++subscription_count;
  }

  // Takes `sub` out of `end`'s vectors in O(1) amortized; false if it is not there.
  static bool take_out(node& end, const subscription_ptr& sub) {
    const std::size_t slot = sub->index_slot;
    if (sub->queue.empty()) {
      if (slot >= end.plain.size() || end.plain[slot] != sub) return false;
      if (slot != end.plain.size() - 1) {
        end.plain[slot] = std::move(end.plain.back());
        end.plain[slot]->index_slot = slot;
      }
      end.plain.pop_back();
      return true;
    }
    const auto it = end.groups.find(std::string_view(sub->queue));
    if (it == end.groups.end()) return false;
    node::queue_group& group = it->second;
    if (slot >= group.members.size() || group.members[slot] != sub) return false;
    group.members[slot].reset();
    if (--group.live == 0) {
      // The cursor goes with the group: a group formed later starts afresh.
      end.groups.erase(it);
      return true;
    }
    while (!group.members.back())
      group.members.pop_back();
    if (group.members.size() > 2 * group.live) {
      // More holes than members: compact, keeping subscribe order. Each compaction follows
      // at least as many removals as it moves members, so removal stays O(1) amortized.
      std::size_t to = 0;
      for (std::size_t from = 0; from < group.members.size(); ++from) {
        if (!group.members[from]) continue;
        if (from != to) group.members[to] = std::move(group.members[from]);
        group.members[to]->index_slot = to;
        ++to;
      }
      group.members.resize(to);
    }
    return true;
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
    if (!take_out(end, sub)) return false;
    end.forget_snapshot();
    --subscription_count;

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
  impl::cache_table dropped;  // freed after the locks, on the way out
  std::unique_lock lock(impl_->trie_mutex);
  impl_->add(sub);
  // Bumped before the cache is emptied: a match computed before this change sees the new
  // generation and stays out of the cache, or got in first and is dropped below.
  generation_.fetch_add(1);
  impl_->drop_cache(dropped);
}

void subscription_index::remove(const std::shared_ptr<subscription>& sub) {
  if (!sub) return;
  remove_all(std::span(&sub, 1));
}

void subscription_index::remove_all(std::span<const std::shared_ptr<subscription>> subs) {
  impl::cache_table dropped;  // freed after the locks, on the way out
  std::unique_lock lock(impl_->trie_mutex);
  bool changed = false;
  for (const auto& sub : subs) {
    if (sub && impl_->erase(sub)) changed = true;
  }
  if (!changed) return;
  generation_.fetch_add(1);
  impl_->drop_cache(dropped);
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
  // A result too big for the whole budget is never cached (nor the exclusive lock taken
  // for it); a topic it alone matches still gets the node's shared instance, uncopied.
  if (impl::entry_bytes(topic) + impl::held_result_bytes(*result) > impl_->opts.cache_max_bytes) {
    return result;
  }
  std::unique_lock lock(impl_->cache_mutex);
  // A change since then has emptied the cache: a stale result must not enter it after.
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
  return impl_->cache.entries.size();
}

std::size_t subscription_index::cache_bytes() const {
  std::shared_lock lock(impl_->cache_mutex);
  return impl_->cache.bytes;
}

}  // namespace tidings::broker
