// The client library's pure parts: reconnect backoff, request bookkeeping, confirmations,
// the subscription registry, the handshake, the reconnect buffer, server addresses and
// error codes. Each is stepped one event at a time, as the connection drives it.

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "tidings/client/detail/confirmation_table.hpp"
#include "tidings/client/detail/handshake.hpp"
#include "tidings/client/detail/reconnect_buffer.hpp"
#include "tidings/client/detail/subscription_registry.hpp"
#include "tidings/client/errors.hpp"
#include "tidings/client/options.hpp"
#include "tidings/client/reconnect_policy.hpp"
#include "tidings/client/request_table.hpp"

namespace tidings::client {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

reconnect_settings exact(milliseconds initial, milliseconds max, double multiplier = 2.0) {
  reconnect_settings settings;
  settings.initial_delay = initial;
  settings.max_delay = max;
  settings.multiplier = multiplier;
  settings.jitter = 0.0;
  return settings;
}

TEST(ReconnectPolicy, DoublesFromTheInitialDelayUpToTheMaximum) {
  reconnect_policy policy(exact(100ms, 1000ms));
  const milliseconds expected[] = {100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms, 1000ms};
  for (const auto delay : expected) {
    const auto next = policy.next_delay();
    ASSERT_TRUE(next);
    EXPECT_EQ(*next, delay);
  }
  EXPECT_EQ(policy.attempts(), 7U);
}

TEST(ReconnectPolicy, ResetStartsAgainFromTheInitialDelay) {
  reconnect_policy policy(exact(50ms, 5000ms));
  (void)policy.next_delay();
  (void)policy.next_delay();
  EXPECT_EQ(*policy.next_delay(), 200ms);
  policy.reset();
  EXPECT_EQ(policy.attempts(), 0U);
  EXPECT_EQ(*policy.next_delay(), 50ms);
}

TEST(ReconnectPolicy, GivesUpAfterMaxAttemptsUntilReset) {
  auto settings = exact(10ms, 100ms);
  settings.max_attempts = 3;
  reconnect_policy policy(settings);
  EXPECT_TRUE(policy.next_delay());
  EXPECT_TRUE(policy.next_delay());
  EXPECT_TRUE(policy.next_delay());
  EXPECT_FALSE(policy.next_delay());
  EXPECT_FALSE(policy.next_delay());
  policy.reset();
  EXPECT_TRUE(policy.next_delay());
}

TEST(ReconnectPolicy, ZeroAttemptsAndDisabledNeverRetry) {
  auto settings = exact(10ms, 100ms);
  settings.max_attempts = 0;
  EXPECT_FALSE(reconnect_policy(settings).next_delay());
  settings.max_attempts.reset();
  settings.enabled = false;
  EXPECT_FALSE(reconnect_policy(settings).next_delay());
}

TEST(ReconnectPolicy, UnlimitedAttemptsNeverOverflow) {
  reconnect_policy policy(exact(1ms, 30000ms, 10.0));
  for (int i = 0; i < 10000; ++i) {
    const auto next = policy.next_delay();
    ASSERT_TRUE(next);
    ASSERT_GE(next->count(), 0);
    ASSERT_LE(*next, 30000ms);
  }
  EXPECT_EQ(*policy.next_delay(), 30000ms);
}

TEST(ReconnectPolicy, JitterSpreadsDelaysWithinTheBand) {
  reconnect_settings settings = exact(1000ms, 60000ms);
  settings.jitter = 0.25;
  std::set<long> seen;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    reconnect_policy policy(settings, seed);
    const auto first = policy.next_delay();
    ASSERT_TRUE(first);
    EXPECT_GE(*first, 750ms);
    EXPECT_LE(*first, 1250ms);
    seen.insert(first->count());
  }
  // Clients cut off together must not all come back at the same moment.
  EXPECT_GT(seen.size(), 50U);
}

TEST(ReconnectPolicy, JitterNeverExceedsTheMaximum) {
  reconnect_settings settings = exact(1000ms, 1000ms);
  settings.jitter = 0.5;
  reconnect_policy policy(settings, 7);
  for (int i = 0; i < 1000; ++i)
    EXPECT_LE(*policy.next_delay(), 1000ms);
}

TEST(ReconnectPolicy, SameSeedSameDelays) {
  reconnect_settings settings = exact(100ms, 10000ms);
  settings.jitter = 0.3;
  reconnect_policy first(settings, 42);
  reconnect_policy second(settings, 42);
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(*first.next_delay(), *second.next_delay());
}

using table = request_table<std::string>;
using clock = table::clock;

TEST(RequestTable, ReplyTopicsMapBackToTheirRequest) {
  table requests("_INBOX.abc");
  const auto now = clock::now();
  const auto first = requests.add(now + 1s, "first");
  const auto second = requests.add(now + 1s, "second");
  EXPECT_NE(first, second);
  EXPECT_EQ(requests.inbox_pattern(), "_INBOX.abc.*");
  EXPECT_EQ(requests.reply_topic(second), "_INBOX.abc." + std::to_string(second));
  EXPECT_EQ(requests.take(requests.reply_topic(second)), "second");
  EXPECT_EQ(requests.size(), 1U);
  // A second reply to the same request (or a late one) finds nothing.
  EXPECT_FALSE(requests.take(requests.reply_topic(second)));
  EXPECT_EQ(requests.take(requests.reply_topic(first)), "first");
  EXPECT_TRUE(requests.empty());
}

TEST(RequestTable, TopicsOutsideTheInboxAreNotRequests) {
  table requests("_INBOX.abc");
  const auto id = requests.add(clock::now() + 1s, "x");
  const std::string token = std::to_string(id);
  for (const std::string& topic : std::vector<std::string>{
           "_INBOX.abd." + token, "_INBOX.ab." + token, "_INBOX.abc", "_INBOX.abc.",
           "_INBOX.abc." + token + "x", "_INBOX.abc.-1", "_INBOX.abc." + token + ".1",
           "_INBOX.abcd" + token, "other." + token, "_INBOX.abc.99999999999999999999999"}) {
    EXPECT_FALSE(requests.take(topic)) << topic;
  }
  EXPECT_EQ(requests.size(), 1U);
}

TEST(RequestTable, ExpiresOnlyWhatIsDueOldestFirst) {
  table requests("_INBOX.t");
  const auto now = clock::now();
  requests.add(now + 300ms, "late");
  requests.add(now + 100ms, "early");
  requests.add(now + 200ms, "middle");
  EXPECT_EQ(requests.next_deadline(), now + 100ms);
  EXPECT_TRUE(requests.take_expired(now + 50ms).empty());
  const auto due = requests.take_expired(now + 200ms);
  ASSERT_EQ(due.size(), 2U);
  EXPECT_EQ(due[0], "early");
  EXPECT_EQ(due[1], "middle");
  EXPECT_EQ(requests.next_deadline(), now + 300ms);
  EXPECT_EQ(requests.take_all().size(), 1U);
  EXPECT_FALSE(requests.next_deadline());
}

TEST(RequestTable, AnsweredRequestsDoNotExpire) {
  table requests("_INBOX.t");
  const auto now = clock::now();
  const auto id = requests.add(now + 10ms, "answered");
  requests.add(now + 20ms, "pending");
  EXPECT_EQ(requests.take(id), "answered");
  const auto due = requests.take_expired(now + 1s);
  ASSERT_EQ(due.size(), 1U);
  EXPECT_EQ(due[0], "pending");
}

TEST(RequestTable, EqualDeadlinesAreKeptApart) {
  table requests("_INBOX.t");
  const auto deadline = clock::now();
  for (int i = 0; i < 100; ++i)
    requests.add(deadline, std::to_string(i));
  EXPECT_EQ(requests.take_expired(deadline).size(), 100U);
}

// --- requests across a lost connection -------------------------------------------------

TEST(RequestTable, ALostConnectionFailsOnlyTheRequestsSentOnIt) {
  table requests("_INBOX.t");
  const auto now = clock::now();
  const auto sent = requests.add(now + 1h, "sent");
  requests.add(now + 1h, "buffered", detail::outbound_phase::buffered);
  const auto lost = requests.take_sent();
  ASSERT_EQ(lost.size(), 1U);
  EXPECT_EQ(lost[0], "sent");
  EXPECT_FALSE(requests.take(sent));
  EXPECT_EQ(requests.size(), 1U);
  // A refused attempt changes nothing; the accepted connection carries the buffered one.
  EXPECT_TRUE(requests.take_sent().empty());
  requests.mark_buffered_sent();
  const auto second_loss = requests.take_sent();
  ASSERT_EQ(second_loss.size(), 1U);
  EXPECT_EQ(second_loss[0], "buffered");
  EXPECT_FALSE(requests.next_deadline());
}

// --- confirmations -------------------------------------------------------------------

using confirmations = detail::confirmation_table<std::string>;
using detail::outbound_phase;

TEST(ConfirmationTable, AnswersCompleteTheirOwnOperationOnce) {
  confirmations pending;
  pending.add(7, outbound_phase::sent, "seven");
  pending.add(8, outbound_phase::sent, "eight");
  EXPECT_EQ(pending.take(8), "eight");
  EXPECT_FALSE(pending.take(8));
  EXPECT_FALSE(pending.take(9));
  EXPECT_EQ(pending.size(), 1U);
}

// The sequence of issue 9: confirmed operations buffered while disconnected, an attempt
// refused after `info`, then an accepted connection. Nothing is failed by the refusal,
// nothing is left behind by the acceptance.
TEST(ConfirmationTable, ARefusedAttemptKeepsBufferedConfirmationsForTheNextConnection) {
  confirmations pending;
  pending.add(1, outbound_phase::sent, "on the lost socket");
  pending.add(2, outbound_phase::buffered, "buffered publish");
  pending.add(3, outbound_phase::buffered, "buffered subscription");
  // The connection is lost: only what was sent on it fails.
  const auto lost = pending.take_sent();
  ASSERT_EQ(lost.size(), 1U);
  EXPECT_EQ(lost[0], "on the lost socket");
  // An attempt refused after info (too_many_connections): nothing was sent on it.
  EXPECT_TRUE(pending.take_sent().empty());
  EXPECT_EQ(pending.count(outbound_phase::buffered), 2U);
  // The next connection is accepted and carries the buffer: the answers can come.
  pending.mark_buffered_sent();
  EXPECT_EQ(pending.count(outbound_phase::sent), 2U);
  EXPECT_EQ(pending.take(2), "buffered publish");
  // And if that connection is lost too, the rest fails instead of waiting forever.
  const auto later = pending.take_sent();
  ASSERT_EQ(later.size(), 1U);
  EXPECT_EQ(later[0], "buffered subscription");
  EXPECT_TRUE(pending.empty());
}

TEST(ConfirmationTable, DeadlinesExpireOldestFirstAndLeaveTheRestWaiting) {
  confirmations pending;
  const auto now = confirmations::clock::now();
  pending.add(1, outbound_phase::sent, "no deadline");
  pending.add(2, outbound_phase::sent, "late", now + 300ms);
  pending.add(3, outbound_phase::sent, "early", now + 100ms);
  EXPECT_EQ(pending.next_deadline(), now + 100ms);
  EXPECT_TRUE(pending.take_expired(now).empty());
  const auto due = pending.take_expired(now + 1s);
  ASSERT_EQ(due.size(), 2U);
  EXPECT_EQ(due[0], "early");
  EXPECT_EQ(due[1], "late");
  EXPECT_FALSE(pending.next_deadline());
  EXPECT_EQ(pending.take_all().size(), 1U);
}

TEST(ConfirmationTable, AnsweredOperationsLeaveNoDeadlineBehind) {
  confirmations pending;
  const auto now = confirmations::clock::now();
  pending.add(1, outbound_phase::sent, "flush", now + 10ms);
  EXPECT_EQ(pending.take(1), "flush");
  EXPECT_FALSE(pending.next_deadline());
  pending.add(2, outbound_phase::sent, "lost", now + 10ms);
  EXPECT_EQ(pending.take_sent().size(), 1U);
  EXPECT_FALSE(pending.next_deadline());
  EXPECT_TRUE(pending.take_expired(now + 1s).empty());
}

// --- subscriptions -------------------------------------------------------------------

detail::status_completion record(std::vector<std::string>& log, std::string name) {
  return [&log, name = std::move(name)](const error& result) {
    log.push_back(name + (result ? ":" + result.code.message() : ":ok"));
  };
}

TEST(SubscriptionRegistry, TheConfirmationGoesWithTheFirstSubOnlyAndMaxCountsAcrossConnections) {
  detail::subscription_registry registry;
  detail::subscription_registry::confirmations pending;
  std::vector<std::string> log;
  int calls = 0;
  const auto sid = registry.add(
      "a.*", "q", [&](const message_view&) { ++calls; }, 3, record(log, "sub"));
  std::string out;
  std::int64_t next_id = 10;
  registry.encode_all(out, next_id, pending);
  EXPECT_NE(out.find(R"("op":"sub")"), std::string::npos);
  EXPECT_NE(out.find(R"("id":10)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("queue":"q")"), std::string::npos);
  EXPECT_NE(out.find(R"("max":3)"), std::string::npos);
  EXPECT_EQ(next_id, 11);
  EXPECT_EQ(pending.count(outbound_phase::sent), 1U);

  // One delivery, then a new connection: the sub is restored without an id, with the
  // remaining count.
  auto handler = registry.on_delivery(sid);
  ASSERT_TRUE(handler);
  (*handler)(message_view{});
  out.clear();
  registry.encode_all(out, next_id, pending);
  EXPECT_EQ(out.find(R"("id")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("max":2)"), std::string::npos) << out;
  EXPECT_EQ(next_id, 11);

  // The third delivery ends it before its handler runs; a fourth finds nothing.
  EXPECT_TRUE(registry.on_delivery(sid));
  EXPECT_TRUE(registry.on_delivery(sid));
  EXPECT_FALSE(registry.contains(sid));
  EXPECT_FALSE(registry.on_delivery(sid));
  EXPECT_EQ(calls, 1);
}

TEST(SubscriptionRegistry, UnsentConfirmationsAreHandedBackNotLost) {
  detail::subscription_registry registry;
  std::vector<std::string> log;
  const auto kept = registry.add(
      "k", "", [](const message_view&) {}, 0, nullptr);
  registry.add(
      "a", "", [](const message_view&) {}, 0, record(log, "a"));
  auto unsent = registry.take_unsent_confirmations();
  ASSERT_EQ(unsent.size(), 1U);
  unsent[0](error{});
  EXPECT_EQ(log, std::vector<std::string>{"a:ok"});
  EXPECT_TRUE(registry.take_unsent_confirmations().empty());
  EXPECT_EQ(registry.size(), 2U);
  EXPECT_TRUE(registry.remove(kept));
  EXPECT_FALSE(registry.remove(kept));
  registry.add(
      "b", "", [](const message_view&) {}, 0, record(log, "b"));
  EXPECT_EQ(registry.clear().size(), 1U);
  EXPECT_EQ(registry.size(), 0U);
}

TEST(SubscriptionRegistry, TheInboxHasNoHandlerAndIsMadeOnce) {
  detail::subscription_registry registry;
  bool created = false;
  const auto inbox = registry.ensure_inbox("_INBOX.x.*", created);
  EXPECT_TRUE(created);
  EXPECT_EQ(registry.ensure_inbox("_INBOX.x.*", created), inbox);
  EXPECT_FALSE(created);
  EXPECT_EQ(registry.inbox_sid(), inbox);
  EXPECT_FALSE(registry.on_delivery(inbox));  // replies go to the request table
  std::string out;
  registry.encode_unsub_all(out);
  EXPECT_NE(out.find(R"("op":"unsub")"), std::string::npos);
}

// --- the handshake -------------------------------------------------------------------

TEST(Handshake, OnlyConnectGoesOutUntilTheServerAcceptsIt) {
  detail::handshake steps;
  options settings;
  settings.name = "n";
  settings.echo = false;
  EXPECT_FALSE(steps.in_progress());
  steps.begin();
  EXPECT_TRUE(steps.in_progress());
  EXPECT_FALSE(steps.socket_writable());
  std::string out;
  EXPECT_FALSE(steps.on_info(settings, 5, out));  // no transport yet
  steps.transport_up();
  EXPECT_TRUE(steps.on_info(settings, 5, out));
  EXPECT_NE(out.find(R"("op":"connect")"), std::string::npos);
  EXPECT_NE(out.find(R"("name":"n")"), std::string::npos);
  EXPECT_NE(out.find(R"("echo":false)"), std::string::npos);
  EXPECT_NE(out.find(R"("id":5)"), std::string::npos);
  EXPECT_TRUE(steps.socket_writable());
  EXPECT_FALSE(steps.accepted());
  // A repeated info sends nothing.
  std::string again;
  EXPECT_FALSE(steps.on_info(settings, 6, again));
  EXPECT_TRUE(again.empty());
  EXPECT_FALSE(steps.answers_connect(6));
  EXPECT_TRUE(steps.answers_connect(5));
  steps.on_accepted();
  EXPECT_TRUE(steps.accepted());
  EXPECT_FALSE(steps.in_progress());
  EXPECT_FALSE(steps.answers_connect(5));  // later answers with that id are someone else's
  // The connection is lost; the next attempt starts over.
  steps.reset();
  EXPECT_FALSE(steps.socket_writable());
  steps.begin();
  EXPECT_FALSE(steps.answers_connect(5));
}

TEST(ReconnectBuffer, KeepsWholeFramesUpToItsLimitAndHandsThemOverInOrder) {
  detail::reconnect_buffer buffer(10);
  buffer.frames() += "12345";
  EXPECT_TRUE(buffer.fits());
  const auto start = buffer.size();
  buffer.frames() += "678901";
  EXPECT_FALSE(buffer.fits());
  buffer.truncate(start);
  EXPECT_EQ(buffer.size(), 5U);
  std::string out = "connect;";
  buffer.move_to(out);
  EXPECT_EQ(out, "connect;12345");
  EXPECT_TRUE(buffer.empty());
  buffer.frames() += "abc";
  EXPECT_EQ(buffer.clear(), 3U);
}

TEST(ServerAddress, ParsesHostsPortsAndBracketedV6) {
  struct row {
    const char* text;
    const char* host;
    std::uint16_t port;
  };
  for (const row& r :
       {row{"localhost", "localhost", default_port}, row{"example.org:4800", "example.org", 4800},
        row{"127.0.0.1:0", "127.0.0.1", 0}, row{"[::1]", "::1", default_port},
        row{"[::1]:65535", "::1", 65535}}) {
    const auto parsed = parse_server_address(r.text);
    ASSERT_TRUE(parsed) << r.text;
    EXPECT_EQ(parsed->host, r.host);
    EXPECT_EQ(parsed->port, r.port);
  }
}

TEST(ServerAddress, RejectsMalformedText) {
  for (const char* text : {"", ":4700", "host:", "host:65536", "host:-1", "host:12ab", "::1",
                           "[::1", "[]:80", "[::1]x", "[::1]:", "host:4700:1"}) {
    EXPECT_FALSE(parse_server_address(text)) << text;
  }
}

TEST(ClientErrors, ServerCodesRoundTripAndNameTheWireCode) {
  for (std::size_t i = 0; i < protocol::error_code_count; ++i) {
    const auto code = static_cast<protocol::error_code>(i);
    const auto ec = make_error_code(code);
    EXPECT_TRUE(ec);
    EXPECT_TRUE(is_server_error(ec));
    EXPECT_EQ(server_code(ec), code);
    EXPECT_EQ(ec.message(), protocol::wire_name(code));
  }
  const error_code timeout = errc::timeout;
  EXPECT_FALSE(is_server_error(timeout));
  EXPECT_EQ(timeout.message(), "timed out");
  EXPECT_NE(make_error_code(errc::closed), make_error_code(protocol::error_code::bad_frame));
}

TEST(ClientErrors, ExceptionsCarryTheCodeAndTheServerMessage) {
  const exception failure(
      error{make_error_code(protocol::error_code::invalid_topic), "topic 'a..b' is not valid"});
  EXPECT_EQ(failure.code(), make_error_code(protocol::error_code::invalid_topic));
  EXPECT_EQ(failure.server_message(), "topic 'a..b' is not valid");
  const std::string what = failure.what();
  EXPECT_NE(what.find("invalid_topic"), std::string::npos) << what;
  EXPECT_NE(what.find("a..b"), std::string::npos) << what;
}

}  // namespace
}  // namespace tidings::client
