#include "tidings/broker/router.hpp"

#include "tidings/protocol/encoder.hpp"

namespace tidings::broker {

void delivery_batch::flush() {
  for (auto& target : targets_)
    target->wake();
  targets_.clear();
}

bool router::claim_delivery(const std::shared_ptr<subscription>& sub) {
  // Counted even without a limit: `unsub` with `max` counts every delivery since the
  // subscription was made.
  const std::uint64_t count = sub->delivered.fetch_add(1, std::memory_order_acq_rel) + 1;
  const std::uint64_t limit = sub->max_deliveries.load(std::memory_order_acquire);
  if (limit == 0) return true;
  if (count > limit) return false;
  if (count == limit) {
    sub->live.store(false, std::memory_order_release);
    sub->owner->expire(sub);
  }
  return true;
}

void router::deliver(const std::shared_ptr<subscription>& sub, const shared_body& body,
                     delivery_batch& batch) {
  if (sub->owner->enqueue_msg(sub->sid, body)) batch.add(sub->owner);
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
    if (!eligible(sub) || !claim_delivery(sub)) continue;
    deliver(sub, body_for_delivery(), batch);
    ++deliveries;
  }
  for (const auto& group : targets->groups) {
    // Round robin from the group's cursor, passing over members that cannot take it.
    const std::size_t size = group.members.size();
    const std::uint64_t start = group.cursor->next.fetch_add(1, std::memory_order_relaxed);
    for (std::size_t i = 0; i < size; ++i) {
      const auto& member = group.members[(start + i) % size];
      if (!eligible(member) || !claim_delivery(member)) continue;
      deliver(member, body_for_delivery(), batch);
      ++deliveries;
      break;
    }
  }
  count(delivered_, deliveries);
  return deliveries;
}

}  // namespace tidings::broker
