#include "tidings/protocol/topic.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace tidings::protocol {
namespace {

struct validity_case {
  std::string text;
  bool topic;    // is_valid_topic
  bool pattern;  // is_valid_pattern
  bool wildcard;
};

TEST(TopicTest, ValidityOfTopicsAndPatterns) {
  const std::vector<validity_case> cases = {
      // PROTOCOL.md section 5 examples.
      {"orders", true, true, false},
      {"orders.created", true, true, false},
      {"sensors.eu-west.t17", true, true, false},
      {"orders.*", false, true, true},
      {"orders.>", false, true, true},
      {">", false, true, true},
      {"*", false, true, true},
      {"*.x", false, true, true},
      {"$SYS.>", false, true, true},
      {"a*", false, false, false},
      {"*b", false, false, false},
      {"a.>.c", false, false, true},
      // More shapes.
      {"*.*.>", false, true, true},
      {"a.*.c", false, true, true},
      {">.a", false, false, true},
      {">>", false, false, false},
      {"**", false, false, false},
      {"a.b*", false, false, false},
      {"a.>b", false, false, false},
      {"$SYS", true, true, false},
      {"_INBOX.abc.1", true, true, false},
      {"a.b.c.d.e.f", true, true, false},
      {"A.b", true, true, false},
      // Empty tokens and empty text.
      {"", false, false, false},
      {".", false, false, false},
      {".a", false, false, false},
      {"a.", false, false, false},
      {"a..b", false, false, false},
      {"a.*.", false, false, true},
      // Characters outside 0x21..0x7E.
      {"a b", false, false, false},
      {" a", false, false, false},
      {"a\t", false, false, false},
      {std::string("a\0b", 3), false, false, false},
      {"a\x7F", false, false, false},
      {"caf\xC3\xA9", false, false, false},
      {"\x80", false, false, false},
      {"a\n", false, false, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE("text: \"" + c.text + "\"");
    EXPECT_EQ(is_valid_topic(c.text), c.topic);
    EXPECT_EQ(is_valid_pattern(c.text), c.pattern);
    if (c.pattern) {
      EXPECT_EQ(has_wildcard(c.text), c.wildcard);
    }
  }
}

TEST(TopicTest, EveryPrintableCharacterExceptSeparatorAndWildcardsIsATokenCharacter) {
  for (int c = 0; c < 256; ++c) {
    const std::string token(1, static_cast<char>(c));
    const std::string topic = "a" + token + "b";
    SCOPED_TRACE("byte " + std::to_string(c));
    const bool printable = c >= 0x21 && c <= 0x7E;
    const bool special = c == '.' || c == '*' || c == '>';
    // `a.b` is two tokens; `a*b` and `a>b` are not valid anywhere.
    EXPECT_EQ(is_valid_topic(topic), (printable && !special) || c == '.');
    EXPECT_EQ(is_valid_pattern(topic), (printable && !special) || c == '.');
    // A token of that single character.
    EXPECT_EQ(is_valid_topic("x." + token), printable && !special);
    EXPECT_EQ(is_valid_pattern("x." + token), printable && c != '.');
  }
}

TEST(TopicTest, LengthLimitIs256Bytes) {
  struct length_case {
    std::string text;
    bool valid;
  };
  std::string dotted;  // "a.a.a..." of 255 bytes
  while (dotted.size() < 255)
    dotted += dotted.empty() ? "a" : ".a";
  ASSERT_EQ(dotted.size(), 255U);
  const std::vector<length_case> cases = {
      {std::string(1, 'a'), true},
      {std::string(255, 'a'), true},
      {std::string(256, 'a'), true},
      {std::string(257, 'a'), false},
      {std::string(1000, 'a'), false},
      {dotted, true},
      {dotted + "b", true},    // 256
      {dotted + "bc", false},  // 257
      {std::string(254, 'a') + ".>", true},
      {std::string(255, 'a') + ".>", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE("size " + std::to_string(c.text.size()));
    const bool pattern_only = c.text.ends_with(">");
    EXPECT_EQ(is_valid_pattern(c.text), c.valid);
    EXPECT_EQ(is_valid_topic(c.text), c.valid && !pattern_only);
  }
}

struct match_case {
  std::string_view pattern;
  std::string_view topic;
  bool matches;
};

TEST(TopicTest, PatternMatching) {
  const std::vector<match_case> cases = {
      // Literal patterns.
      {"orders", "orders", true},
      {"orders", "orders.created", false},
      {"orders.created", "orders", false},
      {"orders.created", "orders.created", true},
      {"Orders", "orders", false},  // case-sensitive
      {"orders.created", "orders.createdx", false},
      {"ab.c", "a.bc", false},
      // `*`: exactly one token.
      {"orders.*", "orders.created", true},
      {"orders.*", "orders", false},
      {"orders.*", "orders.created.eu", false},
      {"*.created", "orders.created", true},
      {"*.created", "orders.deleted", false},
      {"*", "orders", true},
      {"*", "orders.created", false},
      {"*.*", "a.b", true},
      {"*.*", "a", false},
      {"a.*.c", "a.b.c", true},
      {"a.*.c", "a.b.d", false},
      {"a.*.c", "a.c", false},
      // `>`: one or more tokens.
      {"orders.>", "orders.created", true},
      {"orders.>", "orders.created.eu", true},
      {"orders.>", "orders", false},
      {"orders.>", "ordersx.created", false},
      {"*.>", "a.b", true},
      {"*.>", "a", false},
      {"a.*.>", "a.b.c.d", true},
      {">", "orders", true},
      {">", "orders.created.eu", true},
      // `$` topics: a wildcard in the first token does not reach them.
      {">", "$SYS", false},
      {">", "$SYS.a", false},
      {"*", "$a", false},
      {"*.x", "$a.x", false},
      {"*.>", "$a.x", false},
      {"$SYS.>", "$SYS.a", true},
      {"$SYS.>", "$SYS.a.b", true},
      {"$SYS.>", "$SYS", false},
      {"$SYS.*", "$SYS.a", true},
      {"$a.x", "$a.x", true},
      {"a.>", "a.$b", true},  // `$` later in the topic is not reserved
      {"a.*", "a.$b", true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.pattern) + " vs " + std::string(c.topic));
    EXPECT_EQ(pattern_matches(c.pattern, c.topic), c.matches);
  }
}

TEST(TopicTest, EveryTopicMatchesItselfAsAPattern) {
  for (const std::string_view topic : {"a", "orders.created", "x.y.z.w", "_INBOX.q.1"}) {
    EXPECT_TRUE(pattern_matches(topic, topic)) << topic;
  }
}

TEST(TopicTest, ReservedTopics) {
  const std::vector<std::pair<std::string_view, bool>> cases = {
      {"$SYS", true}, {"$SYS.>", true}, {"$", true},   {"a.$b", false},
      {"SYS", false}, {"", false},      {"_$", false},
  };
  for (const auto& [topic, reserved] : cases) {
    EXPECT_EQ(is_reserved_topic(topic), reserved) << topic;
  }
  static_assert(is_reserved_topic("$x"));
  static_assert(!is_reserved_topic("x"));
}

TEST(TopicTest, QueueNames) {
  const std::vector<std::pair<std::string, bool>> cases = {
      {"workers", true},
      {"a", true},
      {"q.*>$", true},  // dots and wildcard characters are plain characters here
      {std::string(64, 'q'), true},
      {std::string(65, 'q'), false},
      {"", false},
      {"two words", false},
      {"tab\t", false},
      {"del\x7F", false},
      {"caf\xC3\xA9", false},
      {std::string("nul\0", 4), false},
  };
  for (const auto& [queue, valid] : cases) {
    EXPECT_EQ(is_valid_queue_name(queue), valid) << queue;
  }
  for (int c = 0; c < 256; ++c) {
    EXPECT_EQ(is_valid_queue_name(std::string(1, static_cast<char>(c))), c >= 0x21 && c <= 0x7E)
        << "byte " << c;
  }
}

TEST(TopicTest, HasWildcard) {
  const std::vector<std::pair<std::string_view, bool>> cases = {
      {"a", false},  {"a.b", false},  {"*", true},      {">", true},
      {"a.*", true}, {"a.>", true},   {"*.a", true},    {"a.*.b", true},
      {"a*", false}, {"a.b>", false}, {"$SYS.>", true}, {"_INBOX.x", false},
  };
  for (const auto& [pattern, wildcard] : cases) {
    EXPECT_EQ(has_wildcard(pattern), wildcard) << pattern;
  }
}

TEST(TopicTest, TokenReader) {
  struct token_case {
    std::string_view text;
    std::vector<std::string_view> tokens;
  };
  const std::vector<token_case> cases = {
      {"a", {"a"}},
      {"a.b.c", {"a", "b", "c"}},
      {"orders.*.>", {"orders", "*", ">"}},
      {"", {""}},
      {".", {"", ""}},
      {"a..b", {"a", "", "b"}},
      {"a.", {"a", ""}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.text));
    token_reader reader(c.text);
    std::vector<std::string_view> tokens;
    std::string_view token;
    while (reader.next(token))
      tokens.push_back(token);
    EXPECT_EQ(tokens, c.tokens);
    EXPECT_FALSE(reader.next(token));  // stays exhausted
  }
}

TEST(TopicTest, TokenReaderIsConstexprAndReturnsViewsIntoTheInput) {
  constexpr auto count = [] {
    token_reader reader("a.b.c");
    std::string_view token;
    int n = 0;
    while (reader.next(token))
      ++n;
    return n;
  }();
  static_assert(count == 3);

  const std::string text = "one.two";
  token_reader reader(text);
  std::string_view token;
  ASSERT_TRUE(reader.next(token));
  EXPECT_EQ(token.data(), text.data());
  ASSERT_TRUE(reader.next(token));
  EXPECT_EQ(token.data(), text.data() + 4);
}

}  // namespace
}  // namespace tidings::protocol
