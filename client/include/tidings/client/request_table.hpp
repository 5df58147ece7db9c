#pragma once

// Bookkeeping of outstanding requests over one shared inbox subscription.
//
// Every request gets a token; its reply topic is `<inbox>.<token>`, and the inbox
// subscription `<inbox>.*` receives every reply. The table maps a reply (or a
// no_responders error, which names the reply topic) back to its request and yields the
// requests whose deadlines have passed. Pure: no I/O, the caller supplies the time.
//
// Like confirmation_table, it knows where each request's `pub` frame is: a lost
// connection fails at once the requests sent on it (their reply can no longer come,
// take_sent), while requests buffered for the next connection keep waiting.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tidings/client/detail/outbound_phase.hpp"

namespace tidings::client {

template <class Pending>
class request_table {
 public:
  using clock = std::chrono::steady_clock;
  using token = std::uint64_t;

  // `inbox` is the subscription's prefix, e.g. `_INBOX.k3j9x`.
  explicit request_table(std::string inbox) : inbox_(std::move(inbox)) {}

  const std::string& inbox() const noexcept { return inbox_; }
  // The pattern the inbox subscription uses.
  std::string inbox_pattern() const { return inbox_ + ".*"; }
  std::string reply_topic(token id) const { return inbox_ + "." + std::to_string(id); }

  token add(clock::time_point deadline, Pending pending,
            detail::outbound_phase phase = detail::outbound_phase::sent) {
    const token id = next_++;
    entries_.emplace(id, entry{deadline, std::move(pending), phase});
    deadlines_.emplace(deadline, id);
    return id;
  }

  // The token named by a reply topic of this inbox, if it is one.
  std::optional<token> token_of(std::string_view topic) const noexcept {
    if (topic.size() <= inbox_.size() + 1 || topic.substr(0, inbox_.size()) != inbox_ ||
        topic[inbox_.size()] != '.') {
      return std::nullopt;
    }
    token value = 0;
    for (const char c : topic.substr(inbox_.size() + 1)) {
      if (c < '0' || c > '9' || value > (UINT64_MAX - 9) / 10) return std::nullopt;
      value = value * 10 + static_cast<token>(c - '0');
    }
    return value;
  }

  // Removes and returns the request a reply topic belongs to (nullopt: unknown, e.g.
  // a late reply to a request that already timed out).
  std::optional<Pending> take(std::string_view reply_topic) {
    const auto id = token_of(reply_topic);
    if (!id) return std::nullopt;
    return take(*id);
  }

  std::optional<Pending> take(token id) {
    const auto found = entries_.find(id);
    if (found == entries_.end()) return std::nullopt;
    deadlines_.erase({found->second.deadline, id});
    Pending pending = std::move(found->second.pending);
    entries_.erase(found);
    return pending;
  }

  // Removes and returns every request whose deadline is at or before `now`, oldest first.
  std::vector<Pending> take_expired(clock::time_point now) {
    std::vector<Pending> expired;
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      const token id = deadlines_.begin()->second;
      if (auto pending = take(id)) expired.push_back(std::move(*pending));
    }
    return expired;
  }

  // Removes and returns the requests sent on a connection that was lost, oldest first.
  std::vector<Pending> take_sent() {
    std::vector<Pending> sent;
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.phase != detail::outbound_phase::sent) {
        ++it;
        continue;
      }
      deadlines_.erase({it->second.deadline, it->first});
      sent.push_back(std::move(it->second.pending));
      it = entries_.erase(it);
    }
    return sent;
  }

  // The buffered requests were handed to a connection the server accepted.
  void mark_buffered_sent() noexcept {
    for (auto& [id, item] : entries_)
      item.phase = detail::outbound_phase::sent;
  }

  // Removes and returns everything (the connection is closing).
  std::vector<Pending> take_all() {
    std::vector<Pending> all;
    all.reserve(entries_.size());
    for (auto& [id, item] : entries_)
      all.push_back(std::move(item.pending));
    entries_.clear();
    deadlines_.clear();
    return all;
  }

  std::optional<clock::time_point> next_deadline() const noexcept {
    if (deadlines_.empty()) return std::nullopt;
    return deadlines_.begin()->first;
  }

  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }

 private:
  struct entry {
    clock::time_point deadline;
    Pending pending;
    detail::outbound_phase phase;
  };

  std::string inbox_;
  token next_ = 1;
  std::map<token, entry> entries_;
  std::set<std::pair<clock::time_point, token>> deadlines_;
};

}  // namespace tidings::client
