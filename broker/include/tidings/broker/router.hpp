#pragma once

// Turns one publish into deliveries: match the topic in the index, pick one member of
// each matching queue group, encode the message body once, and queue it on every target.
//
// The router never writes to a socket. Targets are woken (told to write) by the caller
// once per read batch through delivery_batch, so a publisher sending 1000 messages in one
// read causes one write per subscriber, not 1000.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tidings/broker/shared_body.hpp"
#include "tidings/broker/subscription.hpp"
#include "tidings/broker/subscription_index.hpp"
#include "tidings/protocol/messages.hpp"

namespace tidings::broker {

// What a subscriber did with one message.
struct enqueue_result {
  // Queued. Not queued: the connection is ending, the subscription was ended by its
  // owner or has had its `max`, or the slow-consumer policy dropped it.
  bool accepted = false;
  bool wake = false;  // the caller must wake() the subscriber after its batch
  bool last = false;  // the subscription's last delivery under `max`: expire() it
};

// What the router delivers to: a session, or a fake in tests. Every member may be called
// from any thread.
class subscriber {
 public:
  virtual ~subscriber() = default;

  // Queues one `msg` for subscription `sub` (owned by this subscriber) with the shared
  // `body` (encode_msg_body), if sub.may_accept() under the subscriber's lock; counts it
  // with sub.count_accepted() under that lock.
  virtual enqueue_result enqueue_msg(subscription& sub, const shared_body& body) = 0;

  // Starts writing what was queued.
  virtual void wake() = 0;

  // `sub` reached its `max` deliveries and is no longer live: forget it.
  virtual void expire(const std::shared_ptr<subscription>& sub) = 0;
};

// Subscribers to wake at the end of a read batch.
class delivery_batch {
 public:
  void add(std::shared_ptr<subscriber> target) { targets_.push_back(std::move(target)); }
  // Wakes every target once and empties the batch.
  void flush();
  bool empty() const noexcept { return targets_.empty(); }

 private:
  std::vector<std::shared_ptr<subscriber>> targets_;
};

class router {
 public:
  explicit router(subscription_index& index) noexcept : index_(index) {}

  // Delivers `pub` from `publisher` (whose own subscriptions are skipped unless `echo`).
  // Returns the number of deliveries accepted. A queue group whose chosen member refuses
  // the message offers it to the next member; refused messages count nowhere.
  std::size_t publish(const subscriber* publisher, bool echo, const protocol::pub_message& pub,
                      delivery_batch& batch);

  // Totals of this router (one per event loop). Written only by the loop's thread;
  // readable from any thread.
  std::uint64_t published() const noexcept { return published_.load(std::memory_order_relaxed); }
  std::uint64_t delivered() const noexcept { return delivered_.load(std::memory_order_relaxed); }

 private:
  // Queues and (on the last delivery under `max`) expires; false if not accepted.
  static bool deliver(const std::shared_ptr<subscription>& sub, const shared_body& body,
                      delivery_batch& batch);

  // Single writer: a relaxed load and store, no read-modify-write on the hot path.
  static void count(std::atomic<std::uint64_t>& counter, std::uint64_t n) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  subscription_index& index_;
  std::string scratch_;
  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> delivered_{0};
};

}  // namespace tidings::broker
