#include "tidings/protocol/json.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace tidings::protocol::json {
namespace {

struct validity_case {
  std::string text;
  bool valid;
};

std::string printable(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text.substr(0, 80)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F) {
      out += c;
    } else {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 0xF];
    }
  }
  if (text.size() > 80) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

void expect_validity(const std::vector<validity_case>& cases) {
  for (const auto& c : cases) {
    EXPECT_EQ(is_valid(c.text), c.valid) << "text: " << printable(c.text);
  }
}

std::string nested_arrays(std::size_t depth, std::string_view inner = "") {
  return std::string(depth, '[') + std::string(inner) + std::string(depth, ']');
}

TEST(JsonTest, ValidValuesOfEveryKind) {
  expect_validity({
      {"{}", true},
      {"[]", true},
      {R"({"a":1})", true},
      {R"({"a":{"b":[1,{"c":null}]},"d":"e"})", true},
      {R"([1,"a",true,false,null,{},[],-2.5e+3])", true},
      {R"("")", true},
      {R"("text")", true},
      {"0", true},
      {"true", true},
      {"false", true},
      {"null", true},
      {R"({"":""})", true},        // the empty name is JSON
      {R"({"a":1,"a":2})", true},  // repeats are the parser's business, not the scanner's
  });
}

TEST(JsonTest, OnlyTheFourJsonWhitespaceCharacters) {
  expect_validity({
      {" {} ", true},
      {"\t\n\r {}\r\n\t ", true},
      {"{ \"a\" :\t[ 1 ,\n2 ]\r}", true},
      {" 1 ", true},
      {"", false},
      {"   ", false},
      {"\f{}", false},
      {"\v{}", false},
      {"{}\f", false},
      {"[1,\f2]", false},
      {"\xC2\xA0{}", false},      // U+00A0 no-break space
      {"\xE2\x80\x80{}", false},  // U+2000 en quad
      {"\x1C{}", false},
      {std::string("{}\0", 3), false},
      {std::string("\0{}", 3), false},
  });
}

TEST(JsonTest, ByteOrderMarkIsRejected) {
  expect_validity({
      {"\xEF\xBB\xBF{}", false},
      {"\xEF\xBB\xBF"
       "1",
       false},
      {" \xEF\xBB\xBF{}", false},
      {"\"\xEF\xBB\xBF\"", true},  // U+FEFF inside a string is just a character
  });
}

TEST(JsonTest, Utf8InStrings) {
  const std::vector<std::pair<std::string, bool>> sequences = {
      // Valid: the boundaries of each length.
      {"\xC2\x80", true},          // U+0080
      {"\xDF\xBF", true},          // U+07FF
      {"\xE0\xA0\x80", true},      // U+0800
      {"\xED\x9F\xBF", true},      // U+D7FF
      {"\xEE\x80\x80", true},      // U+E000
      {"\xEF\xBF\xBF", true},      // U+FFFF
      {"\xF0\x90\x80\x80", true},  // U+10000
      {"\xF4\x8F\xBF\xBF", true},  // U+10FFFF
      {"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80", true},
      // Overlong forms.
      {"\xC0\x80", false},
      {"\xC1\xBF", false},
      {"\xE0\x80\x80", false},
      {"\xE0\x9F\xBF", false},
      {"\xF0\x80\x80\x80", false},
      {"\xF0\x8F\xBF\xBF", false},
      // UTF-16 surrogates encoded in UTF-8.
      {"\xED\xA0\x80", false},
      {"\xED\xBF\xBF", false},
      // Above U+10FFFF.
      {"\xF4\x90\x80\x80", false},
      {"\xF5\x80\x80\x80", false},
      {"\xF7\xBF\xBF\xBF", false},
      {"\xF8\x88\x80\x80\x80", false},
      {"\xFE", false},
      {"\xFF", false},
      // Truncated sequences (followed by the closing quote or by ASCII).
      {"\xC3", false},
      {"\xE2\x82", false},
      {"\xF0\x9F\x98", false},
      {"\xC3x", false},
      {"\xE2\x82x", false},
      {"\xF0\x9F\x98x", false},
      // Stray continuation bytes.
      {"\x80", false},
      {"\xBF", false},
      {"a\x80"
       "b",
       false},
      {"\xC3\xA9\xA9", false},
  };
  for (const auto& [sequence, valid] : sequences) {
    const std::string text = "\"" + sequence + "\"";
    EXPECT_EQ(is_valid(text), valid) << printable(text);
    // The same at every offset of a longer string, so that both the vectorised scan and
    // the byte-by-byte tail meet the sequence.
    for (std::size_t pad = 0; pad < 40; ++pad) {
      const std::string padded = "[\"" + std::string(pad, 'a') + sequence + "\",1]";
      EXPECT_EQ(is_valid(padded), valid) << printable(padded);
    }
  }
  // Bytes at the very end of the input, with no closing quote to stop at.
  EXPECT_FALSE(is_valid("\"\xC3"));
  EXPECT_FALSE(is_valid("\"\xF0\x9F"));
  EXPECT_FALSE(is_valid("\"abc"));
  EXPECT_FALSE(is_valid("\""));
}

TEST(JsonTest, NonAsciiOutsideStringsIsRejected) {
  expect_validity({
      {"\xC3\xA9", false},
      {"[\xC3\xA9]", false},
      {"{\"a\":\xC3\xA9}", false},
  });
}

TEST(JsonTest, RawControlCharactersInStringsAreRejected) {
  for (int c = 0; c < 0x20; ++c) {
    const std::string text = std::string("\"a") + static_cast<char>(c) + "b\"";
    EXPECT_FALSE(is_valid(text)) << "control character " << c;
    const std::string longer = "[\"" + std::string(20, 'x') + static_cast<char>(c) + "\"]";
    EXPECT_FALSE(is_valid(longer)) << "control character " << c;
  }
  EXPECT_TRUE(
      is_valid("\"a\x7F"
               "b\""));  // DEL is not a control character in JSON
}

TEST(JsonTest, Escapes) {
  expect_validity({
      {R"("\"\\\/\b\f\n\r\t")", true},
      {R"("\u0000\u0041\u00e9\u00E9\uFFFF\uD7FF\uE000\u20ac")", true},
      {R"("\x41")", false},
      {R"("\a")", false},
      {R"("\'")", false},
      {R"("\0")", false},
      {R"("\U0041")", false},
      {R"("\u12G4")", false},
      {R"("\u123")", false},
      {R"("\u12")", false},
      {R"("\u")", false},
      {R"("\ u0041")", false},
      {"\"\\", false},
      {"\"\\\"", false},  // the escaped quote does not close the string
      {"\"\\u00", false},
  });
}

// I-JSON (RFC 7493) reading: a \u escape of a surrogate must be part of a high-low pair,
// so every value forwarded is one any receiver's parser accepts.
TEST(JsonTest, SurrogateEscapesOnlyAsPairs) {
  expect_validity({
      {R"("\ud83d\ude00")", true},
      {R"("\uD83D\uDE00")", true},
      {R"("\ud800\udc00")", true},
      {R"("\udbff\udfff")", true},
      {R"("a\ud83d\ude00b")", true},
      {R"("\ud800")", false},  // high alone
      {R"("\udbff")", false},
      {R"("\udc00")", false},  // low alone
      {R"("\udfff")", false},
      {R"("\ud800\u0041")", false},  // high + non-low
      {R"("\ud800\ud800")", false},  // high + high
      {R"("\udc00\ud800")", false},  // pair in the wrong order
      {R"("\ud800x")", false},
      {R"("\ud800\n")", false},
      {R"("\ud800\u")", false},
      {"\"\\ud800", false},
      {"\"\\ud800\\udc0", false},
  });
}

TEST(JsonTest, Numbers) {
  std::string huge(300, '7');
  huge.front() = '1';
  expect_validity({
      {"0", true},           {"-0", true},
      {"-0.0", true},        {"1e3", true},
      {"1E+3", true},        {"1E-3", true},
      {"1.5e-7", true},      {"0e0", true},
      {"0.0000", true},      {"-1", true},
      {"123.456e789", true}, {"1e400", true},  // any size: numbers are forwarded as written
      {"1e-400", true},      {huge, true},
      {"-" + huge, true},    {huge + "." + huge + "e" + huge, true},
      {"01", false},         {"-01", false},
      {"00", false},         {"+1", false},
      {"1.", false},         {"1.e3", false},
      {".5", false},         {"-.5", false},
      {"1e", false},         {"1e+", false},
      {"1E-", false},        {"1ee3", false},
      {"1e3.5", false},      {"-", false},
      {"--1", false},        {"- 1", false},
      {"0x10", false},       {"NaN", false},
      {"Infinity", false},   {"-Infinity", false},
      {"1 2", false},        {"1,2", false},
      {"[01]", false},       {"[1.]", false},
      {"[-]", false},        {"{\"a\":+1}", false},
  });
}

TEST(JsonTest, Literals) {
  expect_validity({
      {"true", true},
      {"false", true},
      {"null", true},
      {"[true,false,null]", true},
      {"tru", false},
      {"nul", false},
      {"fals", false},
      {"True", false},
      {"NULL", false},
      {"truex", false},
      {"nulll", false},
      {"true false", false},
      {"[tru]", false},
      {"t", false},
  });
}

TEST(JsonTest, Structure) {
  expect_validity({
      {"[1,]", false},
      {"{\"a\":1,}", false},
      {"[,]", false},
      {"[,1]", false},
      {"{,}", false},
      {"[1,,2]", false},
      {"{\"a\"}", false},
      {"{\"a\":}", false},
      {"{\"a\" 1}", false},
      {"{1:2}", false},
      {"{a:1}", false},
      {"{'a':1}", false},
      {"[1 2]", false},
      {"{\"a\":1 \"b\":2}", false},
      {"[", false},
      {"]", false},
      {"{", false},
      {"}", false},
      {"[}", false},
      {"{]", false},
      {"[\"a\":1]", false},
      {"{\"a\",1}", false},
      {"[1]]", false},
      {"{}{}", false},
      {"{} {}", false},
      {"[][]", false},
      {"{\"a\":1}}", false},
      {"[[]", false},
      {"{\"a\":[}", false},
      {"/* comment */ {}", false},
      {"{} // comment", false},
  });
}

TEST(JsonTest, DepthLimit) {
  EXPECT_TRUE(is_valid(nested_arrays(1)));
  EXPECT_TRUE(is_valid(nested_arrays(127)));
  EXPECT_TRUE(is_valid(nested_arrays(128)));  // the outermost is level 1
  EXPECT_FALSE(is_valid(nested_arrays(129)));
  EXPECT_TRUE(is_valid(nested_arrays(128, "1")));
  EXPECT_TRUE(is_valid(nested_arrays(128, "\"[[[[[[\"")));  // brackets in strings do not count

  // Objects count alike.
  std::string objects;
  for (int i = 0; i < 127; ++i)
    objects += "{\"a\":";
  objects += "[]" + std::string(127, '}');
  EXPECT_TRUE(is_valid(objects));
  objects = "[" + objects + "]";
  EXPECT_FALSE(is_valid(objects));

  // Depth is measured, not counted: many siblings at level 2 are fine.
  std::string wide = "[";
  for (int i = 0; i < 1000; ++i)
    wide += i == 0 ? "[]" : ",[]";
  wide += "]";
  EXPECT_TRUE(is_valid(wide));

  // A custom limit.
  EXPECT_TRUE(is_valid("[[]]", 2));
  EXPECT_FALSE(is_valid("[[]]", 1));
  EXPECT_TRUE(is_valid("[1]", 1));
  EXPECT_TRUE(is_valid(nested_arrays(300), 300));
  EXPECT_FALSE(is_valid(nested_arrays(301), 300));
}

TEST(JsonTest, DeepNestingIsRejectedWithoutRecursion) {
  // Would overflow the stack of a recursive parser.
  EXPECT_FALSE(is_valid(std::string(100000, '[')));
  EXPECT_FALSE(is_valid(nested_arrays(100000)));
  std::string objects;
  for (int i = 0; i < 100000; ++i)
    objects += "{\"a\":";
  EXPECT_FALSE(is_valid(objects));
  kind k{};
  const std::string deep = nested_arrays(100000);
  EXPECT_EQ(scan_value(deep.data(), deep.data() + deep.size(), 1, k), nullptr);
}

struct scan_case {
  std::string text;
  kind value_kind;
  std::size_t length;  // bytes of the first value
};

TEST(JsonTest, ScanValueReportsKindAndEnd) {
  const std::vector<scan_case> cases = {
      {R"({"a":[1]} rest)", kind::object, 9},
      {"[1,{}] ,", kind::array, 6},
      {R"("a\"b" x)", kind::string, 6},
      {"-1.5e3,", kind::number, 6},
      {"0]", kind::number, 1},
      {"true}", kind::boolean, 4},
      {"false", kind::boolean, 5},
      {"null ", kind::null, 4},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    kind k{};
    const char* const begin = c.text.data();
    const char* const end = scan_value(begin, begin + c.text.size(), 1, k);
    ASSERT_NE(end, nullptr);
    EXPECT_EQ(k, c.value_kind);
    EXPECT_EQ(static_cast<std::size_t>(end - begin), c.length);
  }
  // The value must start exactly at p.
  kind k{};
  const std::string spaced = " 1";
  EXPECT_EQ(scan_value(spaced.data(), spaced.data() + spaced.size(), 1, k), nullptr);
  EXPECT_EQ(scan_value(spaced.data(), spaced.data(), 1, k), nullptr);
}

TEST(JsonTest, ScanValueCountsFromTheGivenDepth) {
  kind k{};
  const std::string one = "[]";
  const std::string two = "[[]]";
  // A value that opens level 128 is accepted, one that would open 129 is not.
  EXPECT_NE(scan_value(one.data(), one.data() + one.size(), 128, k), nullptr);
  EXPECT_EQ(scan_value(two.data(), two.data() + two.size(), 128, k), nullptr);
  EXPECT_EQ(scan_value(one.data(), one.data() + one.size(), 129, k), nullptr);
  // Scalars open nothing.
  const std::string scalar = "1";
  EXPECT_NE(scan_value(scalar.data(), scalar.data() + 1, 129, k), nullptr);
}

TEST(JsonTest, ScanStringReportsEscapes) {
  struct string_case {
    std::string text;
    bool valid;
    bool escapes;
    std::size_t length;
  };
  const std::vector<string_case> cases = {
      {R"("abc")", true, false, 5},   {R"("a\nc" tail)", true, true, 6},
      {R"("\u0041")", true, true, 8}, {"\"\xC3\xA9\"", true, false, 4},
      {R"("")", true, false, 2},      {"abc", false, false, 0},
      {R"("abc)", false, false, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    bool escapes = false;
    const char* const end = scan_string(c.text.data(), c.text.data() + c.text.size(), escapes);
    EXPECT_EQ(end != nullptr, c.valid);
    if (c.valid) {
      EXPECT_EQ(static_cast<std::size_t>(end - c.text.data()), c.length);
      EXPECT_EQ(escapes, c.escapes);
    }
  }
}

TEST(JsonTest, SkipWhitespace) {
  const std::string text = " \t\r\n x";
  EXPECT_EQ(skip_whitespace(text.data(), text.data() + text.size()), text.data() + 5);
  const std::string none = "x ";
  EXPECT_EQ(skip_whitespace(none.data(), none.data() + none.size()), none.data());
  const std::string all = "  ";
  EXPECT_EQ(skip_whitespace(all.data(), all.data() + all.size()), all.data() + all.size());
  const std::string form_feed = "\f";
  EXPECT_EQ(skip_whitespace(form_feed.data(), form_feed.data() + 1), form_feed.data());
}

TEST(JsonTest, DecodeString) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", ""},
      {"abc", "abc"},
      {R"(\")", "\""},
      {R"(\\)", "\\"},
      {R"(\/)", "/"},
      {R"(\b\f\n\r\t)", "\b\f\n\r\t"},
      {R"(\u0041)", "A"},
      {R"(\u0000)", std::string(1, '\0')},
      {R"(\u007f)", "\x7F"},
      {R"(\u0080)", "\xC2\x80"},
      {R"(\u00e9)", "\xC3\xA9"},
      {R"(\u00E9)", "\xC3\xA9"},
      {R"(\u07ff)", "\xDF\xBF"},
      {R"(\u0800)", "\xE0\xA0\x80"},
      {R"(\u20ac)", "\xE2\x82\xAC"},
      {R"(\uffff)", "\xEF\xBF\xBF"},
      {R"(\ud83d\ude00)", "\xF0\x9F\x98\x80"},
      {R"(\ud800\udc00)", "\xF0\x90\x80\x80"},
      {R"(\udbff\udfff)", "\xF4\x8F\xBF\xBF"},
      {R"(a\nb\u00e9c\ud83d\ude00d\\)",
       "a\nb\xC3\xA9"
       "c\xF0\x9F\x98\x80"
       "d\\"},
      {"h\xC3\xA9llo", "h\xC3\xA9llo"},  // raw UTF-8 passes through
      {R"(\u006fp)", "op"},
      {R"(\\u0041)", "\\u0041"},  // an escaped backslash, then plain text
  };
  for (const auto& [escaped, expected] : cases) {
    SCOPED_TRACE(escaped);
    // The input must have passed scan_string.
    bool escapes = false;
    const std::string literal = "\"" + escaped + "\"";
    ASSERT_NE(scan_string(literal.data(), literal.data() + literal.size(), escapes), nullptr);
    std::string out = "left over";
    decode_string(escaped, out);
    EXPECT_EQ(out, expected);  // out is replaced, not appended to
  }
}

TEST(JsonTest, AppendStringEscapes) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", R"("")"},
      {"abc", R"("abc")"},
      {"a\"b", R"("a\"b")"},
      {"a\\b", R"("a\\b")"},
      {"\n\r\t", R"("\n\r\t")"},
      {"\b\f", R"("\u0008\u000c")"},
      {std::string(1, '\0'), R"("\u0000")"},
      {"\x1F", R"("\u001f")"},
      {"/", R"("/")"},
      {"\x7F", "\"\x7F\""},
      {"h\xC3\xA9llo", "\"h\xC3\xA9llo\""},
  };
  for (const auto& [text, expected] : cases) {
    std::string out = "prefix:";
    append_string(out, text);
    EXPECT_EQ(out, "prefix:" + expected) << printable(text);  // appends
  }
}

TEST(JsonTest, AppendStringRoundTrips) {
  std::vector<std::string> texts = {
      "",
      "plain",
      "quote \" backslash \\ slash /",
      "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80",
      std::string("nul\0inside", 10),
  };
  std::string every_ascii;
  for (int c = 0; c < 0x80; ++c)
    every_ascii += static_cast<char>(c);
  texts.push_back(every_ascii);
  texts.push_back(std::string(100, '"'));
  texts.push_back(std::string(100, '\x01'));

  for (const auto& text : texts) {
    SCOPED_TRACE(printable(text));
    std::string literal;
    append_string(literal, text);
    EXPECT_TRUE(is_valid(literal));
    bool escapes = false;
    const char* const end = scan_string(literal.data(), literal.data() + literal.size(), escapes);
    ASSERT_EQ(end, literal.data() + literal.size());
    EXPECT_EQ(escapes, !needs_no_escaping(text));
    std::string decoded;
    decode_string(std::string_view(literal).substr(1, literal.size() - 2), decoded);
    EXPECT_EQ(decoded, text);
    // needs_no_escaping means a verbatim copy.
    if (needs_no_escaping(text)) {
      EXPECT_EQ(literal, "\"" + text + "\"");
    }
  }
}

TEST(JsonTest, NeedsNoEscaping) {
  EXPECT_TRUE(needs_no_escaping(""));
  EXPECT_TRUE(needs_no_escaping("orders.created"));
  EXPECT_TRUE(needs_no_escaping("h\xC3\xA9llo"));
  EXPECT_TRUE(needs_no_escaping("\x7F"));
  EXPECT_FALSE(needs_no_escaping("a\"b"));
  EXPECT_FALSE(needs_no_escaping("a\\b"));
  EXPECT_FALSE(needs_no_escaping("a\nb"));
  EXPECT_FALSE(needs_no_escaping(std::string(1, '\0')));
}

}  // namespace
}  // namespace tidings::protocol::json

namespace {

TEST(Utf8SequenceLength, MeasuresValidSequencesAndRejectsTheRest) {
  using tidings::protocol::json::utf8_sequence_length;
  EXPECT_EQ(utf8_sequence_length("\xC3\xA9rest"), 2U);      // é
  EXPECT_EQ(utf8_sequence_length("\xE2\x82\xAC"), 3U);      // €
  EXPECT_EQ(utf8_sequence_length("\xF0\x9F\x98\x80"), 4U);  // U+1F600
  EXPECT_EQ(utf8_sequence_length("\xC0\x80"), 0U);          // overlong
  EXPECT_EQ(utf8_sequence_length("\xED\xA0\x80"), 0U);      // surrogate
  EXPECT_EQ(utf8_sequence_length("\xF4\x90\x80\x80"), 0U);  // above U+10FFFF
  EXPECT_EQ(utf8_sequence_length("\xE2\x82"), 0U);          // truncated
  EXPECT_EQ(utf8_sequence_length("\x80"), 0U);              // stray continuation
  EXPECT_EQ(utf8_sequence_length(""), 0U);
}

}  // namespace
