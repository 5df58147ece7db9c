#include "tidings/broker/router.hpp"

#include "tidings/protocol/encoder.hpp"

namespace tidings::broker {

void delivery_batch::flush() {
  for (auto& target : targets_)
    target->wake();
  targets_.clear();
}

bool router::deliver(const std::shared_ptr<subscription>& sub, const shared_body& body,
                     delivery_batch& batch) {
  const enqueue_result result = sub->owner->enqueue_msg(*sub, body);
  if (!result.accepted) return false;
  if (result.wake) batch.add(sub->owner);
  if (result.last) sub->owner->expire(sub);
  return true;
}

std::size_t router::publish(const subscriber* publisher, bool echo,
                            const protocol::pub_message& pub, delivery_batch& batch) {
  count(published_, 1);
  const std::shared_ptr<const match_result> targets = index_.match(pub.topic);
  if (targets->empty()) return 0;

  auto eligible = [&](const std::shared_ptr<subscription>& sub) {
    return sub->live.load(std::memory_order_acquire) && (echo || sub->owner.get() != publisher);
  };

  // The body is made on first use, so a message nobody receives costs no allocation.
  shared_body body;
  auto body_for_delivery = [&]() -> const shared_body& {
    if (!body) {
      scratch_.clear();
      protocol::encode_msg_body(scratch_, pub.topic, pub.data, pub.reply, pub.headers);
      body = shared_body::copy_of(scratch_);
    }
    return body;
  };

  std::size_t deliveries = 0;
  for (const auto& sub : targets->plain) {
    if (eligible(sub) && deliver(sub, body_for_delivery(), batch)) ++deliveries;
  }
  for (const auto& group : targets->groups) {
    // Round robin from the group's cursor, passing over members that cannot take it
    // (not eligible, or refusing: `max` reached, dropping, ending). The cursor then moves past the
    // chosen member, not merely by one: otherwise the member after a skipped one would get the
    // skipped one's turn as well as its own. The extra add happens only when members
    // were passed over.
    const std::size_t size = group.members.size();
    const std::uint64_t start = group.cursor->next.fetch_add(1, std::memory_order_relaxed);
    for (std::size_t i = 0; i < size; ++i) {
      const auto& member = group.members[(start + i) % size];
      if (!eligible(member) || !deliver(member, body_for_delivery(), batch)) continue;
      if (i != 0) group.cursor->next.fetch_add(i, std::memory_order_relaxed);
      ++deliveries;
      break;
    }
  }
  count(delivered_, deliveries);
  return deliveries;
}

}  // namespace tidings::broker
