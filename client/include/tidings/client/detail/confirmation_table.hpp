#pragma once

// Operations waiting for the server's answer to a frame that carries an `id`: a confirmed
// publish, a confirmed subscription, the ping of a flush or of a drain. Pure (no I/O, the
// caller supplies the time), so it can be stepped one event at a time.
//
// Each entry knows where its frame is (outbound_phase): a lost connection fails only what
// was sent on it (take_sent), a failed reconnect attempt touches nothing, and the
// buffered entries become sent when the connection that carries them is accepted
// (mark_buffered_sent). Nothing is ever left waiting for an answer that cannot come.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "tidings/client/detail/outbound_phase.hpp"

namespace tidings::client::detail {

template <class Completion>
class confirmation_table {
 public:
  using clock = std::chrono::steady_clock;
  using id_type = std::int64_t;

  // `deadline`: the operation fails with a timeout then (flush); none: it waits for the
  // answer or for the connection to end.
  void add(id_type id, outbound_phase phase, Completion done,
           std::optional<clock::time_point> deadline = std::nullopt) {
    entries_.insert_or_assign(id, entry{phase, std::move(done), deadline});
    if (deadline) deadlines_.emplace(*deadline, id);
  }

  // The answer to `id` arrived (nullopt: not ours, or already failed).
  std::optional<Completion> take(id_type id) {
    const auto found = entries_.find(id);
    if (found == entries_.end()) return std::nullopt;
    if (found->second.deadline) deadlines_.erase({*found->second.deadline, id});
    Completion done = std::move(found->second.done);
    entries_.erase(found);
    return done;
  }

  // The connection was lost: what was sent on it will never be answered.
  std::vector<Completion> take_sent() { return take_where(outbound_phase::sent); }

  // The buffered frames were handed to a connection the server accepted.
  void mark_buffered_sent() noexcept {
    for (auto& [id, item] : entries_)
      item.phase = outbound_phase::sent;
  }

  // Every operation whose deadline is at or before `now`, oldest first.
  std::vector<Completion> take_expired(clock::time_point now) {
    std::vector<Completion> expired;
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      if (auto done = take(deadlines_.begin()->second)) expired.push_back(std::move(*done));
    }
    return expired;
  }

  std::optional<clock::time_point> next_deadline() const noexcept {
    if (deadlines_.empty()) return std::nullopt;
    return deadlines_.begin()->first;
  }

  // Everything (the connection is closing for good).
  std::vector<Completion> take_all() {
    std::vector<Completion> all;
    all.reserve(entries_.size());
    for (auto& [id, item] : entries_)
      all.push_back(std::move(item.done));
    entries_.clear();
    deadlines_.clear();
    return all;
  }

  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }
  std::size_t count(outbound_phase phase) const noexcept {
    std::size_t n = 0;
    for (const auto& [id, item] : entries_)
      n += item.phase == phase ? 1 : 0;
    return n;
  }

 private:
  struct entry {
    outbound_phase phase;
    Completion done;
    std::optional<clock::time_point> deadline;
  };

  std::vector<Completion> take_where(outbound_phase phase) {
    std::vector<Completion> taken;
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.phase != phase) {
        ++it;
        continue;
      }
      if (it->second.deadline) deadlines_.erase({*it->second.deadline, it->first});
      taken.push_back(std::move(it->second.done));
      it = entries_.erase(it);
    }
    return taken;
  }

  std::map<id_type, entry> entries_;  // by id: failures come out in the order of the frames
  std::set<std::pair<clock::time_point, id_type>> deadlines_;
};

}  // namespace tidings::client::detail
