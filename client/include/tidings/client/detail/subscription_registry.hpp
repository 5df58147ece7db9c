#pragma once

// The subscriptions of one logical connection, across reconnections: what to send to
// (re)establish each, how many messages each has had (for `max`), and the request inbox.
// Pure (no I/O): it writes frames into a string the connection then sends, so it can be
// stepped one event at a time. Used on the connection's executor only.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tidings/client/detail/completions.hpp"
#include "tidings/client/detail/confirmation_table.hpp"

namespace tidings::client::detail {

class subscription_registry {
 public:
  using confirmations = confirmation_table<status_completion>;

  // A new subscription; `confirm` (may be empty) is handed to the confirmation table with
  // the first `sub` frame sent for it. Returns its sid.
  std::uint64_t add(std::string_view pattern, std::string_view queue, message_handler handler,
                    std::uint64_t max, status_completion confirm);

  // The shared request inbox (no handler: replies go to the request table). Returns its
  // sid, creating it on first use; `created` says whether it is new.
  std::uint64_t ensure_inbox(std::string_view pattern, bool& created);
  std::uint64_t inbox_sid() const noexcept { return inbox_sid_; }
  // The sid the next add() will return.
  std::uint64_t next_sid() const noexcept { return next_sid_; }

  // False when `sid` is unknown (already ended).
  bool remove(std::uint64_t sid);
  bool contains(std::uint64_t sid) const { return entries_.count(sid) != 0; }

  // A `msg` for `sid` arrived: counts it and returns the handler to call; null when the
  // subscription has ended (the message was on its way when it did) or is the inbox. A
  // subscription that reached its `max` is removed before its handler runs, so that the
  // handler may subscribe again with the same arguments.
  std::shared_ptr<message_handler> on_delivery(std::uint64_t sid);

  // Appends the frames that establish `sid` on the current connection: `sub` (with an id
  // taken from `next_id` while a confirmation is awaited; the confirmation moves into
  // `table` as sent) and, with `max`, an `unsub` for the remaining count.
  void encode(std::uint64_t sid, std::string& out, std::int64_t& next_id, confirmations& table);
  // The same for every subscription: a new connection was accepted.
  void encode_all(std::string& out, std::int64_t& next_id, confirmations& table);
  // `unsub` for every subscription (drain).
  void encode_unsub_all(std::string& out) const;

  // The confirmations whose `sub` was never sent, for the caller to fail (the first
  // connection failed); the subscriptions stay.
  std::vector<status_completion> take_unsent_confirmations();
  // Ends everything (the connection is closed for good) and returns the confirmations
  // that were never sent, for the caller to fail.
  std::vector<status_completion> clear();

  std::size_t size() const noexcept { return entries_.size(); }

  struct entry {
    std::string pattern;
    std::string queue;
    std::shared_ptr<message_handler> handler;  // null for the request inbox
    std::uint64_t max = 0;
    std::uint64_t delivered = 0;
    status_completion confirm;  // until the first `sub` carrying an id is sent
  };
  const entry* find(std::uint64_t sid) const;

 private:
  std::unordered_map<std::uint64_t, entry> entries_;
  std::uint64_t next_sid_ = 1;
  std::uint64_t inbox_sid_ = 0;
};

}  // namespace tidings::client::detail
