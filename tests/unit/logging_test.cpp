// escape_for_log: client text in a log line can neither break the line nor reach the
// operator's terminal (issue 9, defect 9).

#include "tidings/broker/logging.hpp"

#include <gtest/gtest.h>

#include <string>

namespace tidings::broker {
namespace {

TEST(EscapeForLog, PlainTextPassesUnchanged) {
  EXPECT_EQ(escape_for_log(""), "");
  EXPECT_EQ(escape_for_log("orders-service 2"), "orders-service 2");
  // UTF-8 outside the control ranges is text.
  EXPECT_EQ(escape_for_log("caf\xC3\xA9 \xE2\x82\xAC"), "caf\xC3\xA9 \xE2\x82\xAC");
}

TEST(EscapeForLog, LineBreaksTabsQuotesAndBackslashesAreEscaped) {
  EXPECT_EQ(escape_for_log("a\nb\rc\td"), R"(a\nb\rc\td)");
  EXPECT_EQ(escape_for_log(R"(say "hi" \ bye)"), R"(say \"hi\" \\ bye)");
}

TEST(EscapeForLog, OtherControlCharactersBecomeHex) {
  EXPECT_EQ(escape_for_log(std::string("\x00\x01\x1b[31m\x7f", 8)), R"(\x00\x01\x1b[31m\x7f)");
  // C1 controls (U+0080..U+009F), which terminals act on like ESC sequences.
  EXPECT_EQ(escape_for_log("x\xC2\x9B"
                           "2J\xC2\x85y"),
            R"(x\u009b2J\u0085y)");
  // U+00A0 and a lone 0xC2 at the end are not controls.
  EXPECT_EQ(escape_for_log("\xC2\xA0z\xC2"), "\xC2\xA0z\xC2");
}

TEST(EscapeForLog, EveryByteBelowSpaceIsEscaped) {
  for (int byte = 0; byte < 0x20; ++byte) {
    const std::string out = escape_for_log(std::string(1, static_cast<char>(byte)));
    ASSERT_GE(out.size(), 2U);
    EXPECT_EQ(out[0], '\\') << byte;
    for (const char c : out)
      EXPECT_GE(static_cast<unsigned char>(c), 0x20) << byte;
  }
}

}  // namespace
}  // namespace tidings::broker
