#include "tidings/client/detail/subscription_registry.hpp"

#include <utility>

#include "tidings/protocol/encoder.hpp"

namespace tidings::client::detail {

std::uint64_t subscription_registry::add(std::string_view pattern, std::string_view queue,
                                         message_handler handler, std::uint64_t max,
                                         status_completion confirm) {
  const std::uint64_t sid = next_sid_++;
  auto& item = entries_[sid];
  item.pattern = pattern;
  item.queue = queue;
  item.handler = std::make_shared<message_handler>(std::move(handler));
  item.max = max;
  item.confirm = std::move(confirm);
  return sid;
}

std::uint64_t subscription_registry::ensure_inbox(std::string_view pattern, bool& created) {
  created = inbox_sid_ == 0;
  if (created) {
    inbox_sid_ = next_sid_++;
    entries_[inbox_sid_].pattern = pattern;
  }
  return inbox_sid_;
}

bool subscription_registry::remove(std::uint64_t sid) {
  if (sid == inbox_sid_) inbox_sid_ = 0;
  return entries_.erase(sid) != 0;
}

std::shared_ptr<message_handler> subscription_registry::on_delivery(std::uint64_t sid) {
  const auto found = entries_.find(sid);
  if (found == entries_.end() || !found->second.handler) return nullptr;
  auto& item = found->second;
  ++item.delivered;
  // A copy: the handler may end its own subscription while it runs.
  auto handler = item.handler;
  if (item.max != 0 && item.delivered >= item.max) entries_.erase(found);
  return handler;
}

void subscription_registry::encode(std::uint64_t sid, std::string& out, std::int64_t& next_id,
                                   confirmations& table) {
  const auto found = entries_.find(sid);
  if (found == entries_.end()) return;
  auto& item = found->second;
  std::string id;
  if (item.confirm) {
    const std::int64_t confirm_id = next_id++;
    protocol::append_integer(id, confirm_id);
    table.add(confirm_id, outbound_phase::sent, std::exchange(item.confirm, {}));
  }
  protocol::encode_sub(out, protocol::sub_message{sid, item.pattern, item.queue}, id);
  if (item.max != 0) {
    protocol::encode_unsub(out, protocol::unsub_message{sid, item.max - item.delivered});
  }
}

void subscription_registry::encode_all(std::string& out, std::int64_t& next_id,
                                       confirmations& table) {
  for (const auto& [sid, item] : entries_)
    encode(sid, out, next_id, table);
}

void subscription_registry::encode_unsub_all(std::string& out) const {
  for (const auto& [sid, item] : entries_)
    protocol::encode_unsub(out, protocol::unsub_message{sid, 0});
}

std::vector<status_completion> subscription_registry::take_unsent_confirmations() {
  std::vector<status_completion> unsent;
  for (auto& [sid, item] : entries_) {
    if (item.confirm) unsent.push_back(std::exchange(item.confirm, {}));
  }
  return unsent;
}

std::vector<status_completion> subscription_registry::clear() {
  auto unsent = take_unsent_confirmations();
  entries_.clear();
  inbox_sid_ = 0;
  return unsent;
}

const subscription_registry::entry* subscription_registry::find(std::uint64_t sid) const {
  const auto found = entries_.find(sid);
  return found == entries_.end() ? nullptr : &found->second;
}

}  // namespace tidings::client::detail
