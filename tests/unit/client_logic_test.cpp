// The client library's pure parts: reconnect backoff, request bookkeeping, server
// addresses and error codes.

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

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
