#include "tidings/protocol/frame_decoder.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tidings::protocol {
namespace {

using status = frame_decoder::status;

std::string prefix(std::uint32_t length) {
  std::string out(frame_prefix_size, '\0');
  store_frame_length(out.data(), length);
  return out;
}

std::string frame(std::string_view body) {
  return prefix(static_cast<std::uint32_t>(body.size())) + std::string(body);
}

// A body of exactly `size` bytes (JSON-ish, but the decoder does not look).
std::string body_of_size(std::size_t size, char fill = 'x') {
  std::string body(size, fill);
  body.front() = '{';
  body.back() = '}';
  return body;
}

struct decoded {
  std::vector<std::string> bodies;
  bool error = false;
  error_code code = error_code::bad_frame;
  std::uint32_t length = 0;
  // Index of the chunk during which the error was reported.
  std::size_t error_chunk = 0;
};

// Feeds each chunk until the decoder needs more; records every frame and the error.
decoded feed(frame_decoder& decoder, const std::vector<std::string_view>& chunks) {
  decoded out;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    std::string_view chunk = chunks[i];
    for (;;) {
      const auto r = decoder.next(chunk);
      EXPECT_LE(r.consumed, chunk.size());
      chunk.remove_prefix(r.consumed);
      if (r.state == status::error) {
        out.error = true;
        out.code = r.error;
        out.length = r.length;
        out.error_chunk = i;
        return out;
      }
      if (r.state == status::need_more) {
        EXPECT_TRUE(chunk.empty()) << "need_more must consume all of the input";
        break;
      }
      out.bodies.emplace_back(r.body);
    }
  }
  return out;
}

// Several frames of different sizes, including the smallest and one large enough to
// straddle any small read.
struct stream_fixture {
  std::vector<std::string> bodies;
  std::string bytes;

  stream_fixture() {
    bodies = {"{}",
              R"({"op":"ping"})",
              body_of_size(3, 'a'),
              R"({"op":"pub","topic":"orders.created","data":{"order":42,"total":9.5}})",
              body_of_size(700, 'b'),
              "[]",
              body_of_size(70, 'c')};
    for (const auto& b : bodies)
      bytes += frame(b);
  }
};

TEST(FrameDecoderTest, EachFrameWhole) {
  const std::vector<std::string> bodies = {"{}", "[]", R"({"op":"ping"})", body_of_size(1000),
                                           body_of_size(default_max_frame)};
  for (const auto& body : bodies) {
    SCOPED_TRACE("body size " + std::to_string(body.size()));
    frame_decoder decoder;
    const std::string input = frame(body);
    const auto r = decoder.next(input);
    ASSERT_EQ(r.state, status::frame);
    EXPECT_EQ(r.consumed, input.size());
    EXPECT_EQ(r.body, body);
    // Zero-copy: a frame that lies whole in the input is a view into it.
    EXPECT_EQ(r.body.data(), input.data() + frame_prefix_size);
    EXPECT_EQ(decoder.buffered(), 0U);
    EXPECT_FALSE(decoder.failed());
    // Nothing left: the next call needs more.
    const auto after = decoder.next(std::string_view(input).substr(r.consumed));
    EXPECT_EQ(after.state, status::need_more);
    EXPECT_EQ(after.consumed, 0U);
  }
}

TEST(FrameDecoderTest, ManyFramesInOneChunkAreViewsIntoIt) {
  const stream_fixture fixture;
  frame_decoder decoder;
  std::string_view input = fixture.bytes;
  std::size_t offset = 0;
  for (const auto& body : fixture.bodies) {
    const auto r = decoder.next(input);
    ASSERT_EQ(r.state, status::frame);
    EXPECT_EQ(r.body, body);
    EXPECT_EQ(r.body.data(), fixture.bytes.data() + offset + frame_prefix_size);
    EXPECT_EQ(r.consumed, frame_prefix_size + body.size());
    input.remove_prefix(r.consumed);
    offset += r.consumed;
  }
  EXPECT_TRUE(input.empty());
  EXPECT_EQ(decoder.next(input).state, status::need_more);
}

TEST(FrameDecoderTest, ByteByByte) {
  const stream_fixture fixture;
  frame_decoder decoder;
  std::vector<std::string> bodies;
  std::size_t frame_start = 0;  // offset where the current frame began
  for (std::size_t i = 0; i < fixture.bytes.size(); ++i) {
    const std::string_view byte = std::string_view(fixture.bytes).substr(i, 1);
    const auto r = decoder.next(byte);
    ASSERT_EQ(r.consumed, 1U) << "offset " << i;
    ASSERT_NE(r.state, status::error);
    if (r.state == status::frame) {
      bodies.emplace_back(r.body);
      EXPECT_EQ(decoder.buffered(), 0U);
      frame_start = i + 1;
    } else {
      EXPECT_EQ(decoder.buffered(), i + 1 - frame_start) << "offset " << i;
    }
  }
  EXPECT_EQ(bodies, fixture.bodies);
}

TEST(FrameDecoderTest, SplitAtEveryOffset) {
  const stream_fixture fixture;
  const std::string_view bytes = fixture.bytes;
  for (std::size_t split = 0; split <= bytes.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    frame_decoder decoder;
    const auto out = feed(decoder, {bytes.substr(0, split), bytes.substr(split)});
    EXPECT_FALSE(out.error);
    EXPECT_EQ(out.bodies, fixture.bodies);
    EXPECT_EQ(decoder.buffered(), 0U);
  }
}

TEST(FrameDecoderTest, SplitAtEveryPairOfOffsetsInTheSmallFrames) {
  // Three chunks: every frame boundary and prefix byte is hit from both sides.
  const std::vector<std::string> bodies = {"{}", R"({"a":1})", "[1,2]"};
  std::string bytes;
  for (const auto& b : bodies)
    bytes += frame(b);
  const std::string_view view = bytes;
  for (std::size_t first = 0; first <= view.size(); ++first) {
    for (std::size_t second = first; second <= view.size(); ++second) {
      frame_decoder decoder;
      const auto out = feed(decoder, {view.substr(0, first), view.substr(first, second - first),
                                      view.substr(second)});
      ASSERT_FALSE(out.error);
      ASSERT_EQ(out.bodies, bodies) << "splits at " << first << " and " << second;
    }
  }
}

TEST(FrameDecoderTest, FramesAfterASplitOneAreViewsAgain) {
  const std::string first = frame(body_of_size(10));
  const std::string second = frame(R"({"op":"ping"})");
  const std::string chunk2 = first.substr(6) + second;
  frame_decoder decoder;
  EXPECT_EQ(decoder.next(std::string_view(first).substr(0, 6)).state, status::need_more);
  EXPECT_EQ(decoder.buffered(), 6U);

  std::string_view input = chunk2;
  const auto r1 = decoder.next(input);
  ASSERT_EQ(r1.state, status::frame);
  EXPECT_EQ(r1.body, body_of_size(10));
  EXPECT_EQ(r1.consumed, first.size() - 6);  // only the rest of the first frame
  input.remove_prefix(r1.consumed);

  const auto r2 = decoder.next(input);
  ASSERT_EQ(r2.state, status::frame);
  EXPECT_EQ(r2.body, R"({"op":"ping"})");
  EXPECT_EQ(r2.body.data(), input.data() + frame_prefix_size);
}

TEST(FrameDecoderTest, BufferedCountsThePartialFrame) {
  const std::string bytes = frame(body_of_size(20));
  struct buffered_case {
    std::size_t fed;
    std::size_t buffered;
  };
  const std::vector<buffered_case> cases = {
      {0, 0}, {1, 1},   {2, 2},   {3, 3}, {4, 4},
      {5, 5}, {10, 10}, {23, 23}, {24, 0}};  // complete: delivered
  for (const auto& c : cases) {
    frame_decoder decoder;
    const auto r = decoder.next(std::string_view(bytes).substr(0, c.fed));
    EXPECT_EQ(r.consumed, c.fed);
    EXPECT_EQ(r.state, c.fed == bytes.size() ? status::frame : status::need_more);
    EXPECT_EQ(decoder.buffered(), c.buffered) << "fed " << c.fed;
  }
}

struct bad_length_case {
  std::uint32_t max_frame;
  std::uint32_t length;
  error_code code;
};

class FrameDecoderBadLengthTest : public testing::TestWithParam<bad_length_case> {};

TEST_P(FrameDecoderBadLengthTest, RejectedAsSoonAsThePrefixIsKnown) {
  const auto& c = GetParam();
  // The prefix alone, with no body behind it: the decision needs nothing more.
  const std::string input = prefix(c.length);
  {
    frame_decoder decoder(c.max_frame);
    const auto r = decoder.next(input);
    ASSERT_EQ(r.state, status::error);
    EXPECT_EQ(r.error, c.code);
    EXPECT_EQ(r.length, c.length);
    EXPECT_TRUE(decoder.failed());
    EXPECT_EQ(decoder.buffered(), 0U);
  }
  // The prefix split in every way: the error comes with the byte that completes it.
  for (std::size_t split = 1; split < frame_prefix_size; ++split) {
    frame_decoder decoder(c.max_frame);
    const std::string_view view = input;
    const auto first = decoder.next(view.substr(0, split));
    EXPECT_EQ(first.state, status::need_more);
    EXPECT_EQ(first.consumed, split);
    EXPECT_EQ(decoder.buffered(), split);
    const auto second = decoder.next(view.substr(split));
    ASSERT_EQ(second.state, status::error) << "split " << split;
    EXPECT_EQ(second.error, c.code);
    EXPECT_EQ(second.length, c.length);
  }
  // Byte by byte.
  {
    frame_decoder decoder(c.max_frame);
    for (std::size_t i = 0; i < frame_prefix_size; ++i) {
      const auto r = decoder.next(std::string_view(input).substr(i, 1));
      EXPECT_EQ(r.state, i + 1 == frame_prefix_size ? status::error : status::need_more);
      if (r.state == status::error) {
        EXPECT_EQ(r.error, c.code);
      }
    }
  }
  // After valid frames in the same chunk: those come first.
  {
    frame_decoder decoder(c.max_frame);
    const std::string bytes = frame("{}") + frame("[]") + input + std::string(50, 'x');
    const auto out = feed(decoder, {bytes});
    EXPECT_EQ(out.bodies, (std::vector<std::string>{"{}", "[]"}));
    EXPECT_TRUE(out.error);
    EXPECT_EQ(out.code, c.code);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Lengths, FrameDecoderBadLengthTest,
    testing::Values(bad_length_case{default_max_frame, 0, error_code::bad_frame},
                    bad_length_case{default_max_frame, 1, error_code::bad_frame},
                    bad_length_case{default_max_frame, default_max_frame + 1,
                                    error_code::frame_too_large},
                    bad_length_case{default_max_frame, 0xFFFFFFFF, error_code::frame_too_large},
                    bad_length_case{100, 101, error_code::frame_too_large},
                    bad_length_case{100, 0x01000000, error_code::frame_too_large}));

TEST(FrameDecoderTest, ExactlyMaxFrameIsAccepted) {
  for (const std::uint32_t max : {std::uint32_t{2}, std::uint32_t{100}, default_max_frame}) {
    SCOPED_TRACE("max_frame " + std::to_string(max));
    const std::string bytes = frame(body_of_size(max));
    {
      frame_decoder decoder(max);
      EXPECT_EQ(decoder.max_frame(), max);
      const auto r = decoder.next(bytes);
      ASSERT_EQ(r.state, status::frame);
      EXPECT_EQ(r.body.size(), max);
    }
    {
      // Split: the body is gathered into storage of exactly its size.
      frame_decoder decoder(max);
      const auto out =
          feed(decoder, {std::string_view(bytes).substr(0, 5), std::string_view(bytes).substr(5)});
      EXPECT_FALSE(out.error);
      ASSERT_EQ(out.bodies.size(), 1U);
      EXPECT_EQ(out.bodies[0], body_of_size(max));
    }
  }
}

TEST(FrameDecoderTest, MinimumFrameIsConfigurable) {
  frame_decoder decoder(100, 1);
  const std::string input = frame("1");  // the body is a view into it
  const auto r = decoder.next(input);
  ASSERT_EQ(r.state, status::frame);
  EXPECT_EQ(r.body, "1");
  EXPECT_EQ(decoder.next(prefix(0)).error, error_code::bad_frame);
}

TEST(FrameDecoderTest, StaysFailedAfterAnError) {
  frame_decoder decoder(100);
  ASSERT_EQ(decoder.next(prefix(101)).state, status::error);
  EXPECT_TRUE(decoder.failed());
  const std::string good = frame("{}");
  for (int i = 0; i < 3; ++i) {
    const auto r = decoder.next(good);
    EXPECT_EQ(r.state, status::error);
    EXPECT_EQ(r.consumed, 0U);
    EXPECT_TRUE(decoder.failed());
  }
  EXPECT_EQ(decoder.next({}).state, status::error);
}

TEST(FrameDecoderTest, EmptyInputNeedsMore) {
  frame_decoder decoder;
  const auto r = decoder.next({});
  EXPECT_EQ(r.state, status::need_more);
  EXPECT_EQ(r.consumed, 0U);
  EXPECT_EQ(decoder.buffered(), 0U);
  // Also in the middle of a body.
  const std::string bytes = frame("{}");
  EXPECT_EQ(decoder.next(std::string_view(bytes).substr(0, 5)).state, status::need_more);
  EXPECT_EQ(decoder.next({}).state, status::need_more);
  EXPECT_EQ(decoder.buffered(), 5U);
  const auto last = decoder.next(std::string_view(bytes).substr(5));
  ASSERT_EQ(last.state, status::frame);
  EXPECT_EQ(last.body, "{}");
}

TEST(FrameDecoderTest, LargeFrameThenSmallFrames) {
  // A large split frame takes storage; later small frames work and shrink() gives the
  // storage back without disturbing anything.
  const std::string large_body = body_of_size(512 * 1024, 'L');
  const std::string large = frame(large_body);
  const stream_fixture small;
  frame_decoder decoder;

  auto out = feed(decoder,
                  {std::string_view(large).substr(0, 1000), std::string_view(large).substr(1000)});
  ASSERT_EQ(out.bodies.size(), 1U);
  EXPECT_EQ(out.bodies[0], large_body);

  // Small frames split, so that they go through the storage again.
  for (std::size_t split : {std::size_t{3}, std::size_t{17}}) {
    out = feed(decoder, {std::string_view(small.bytes).substr(0, split),
                         std::string_view(small.bytes).substr(split)});
    EXPECT_FALSE(out.error);
    EXPECT_EQ(out.bodies, small.bodies);
  }
  decoder.shrink();
  out = feed(decoder,
             {std::string_view(small.bytes).substr(0, 9), std::string_view(small.bytes).substr(9)});
  EXPECT_EQ(out.bodies, small.bodies);

  // shrink() in the middle of a large frame keeps the partial body.
  out = feed(decoder, {std::string_view(large).substr(0, 200000)});
  EXPECT_TRUE(out.bodies.empty());
  EXPECT_EQ(decoder.buffered(), 200000U);
  decoder.shrink();
  EXPECT_EQ(decoder.buffered(), 200000U);
  out = feed(decoder, {std::string_view(large).substr(200000)});
  ASSERT_EQ(out.bodies.size(), 1U);
  EXPECT_EQ(out.bodies[0], large_body);

  // Two large frames in a row, then a small one.
  out = feed(decoder, {std::string_view(large).substr(0, 7), std::string_view(large).substr(7),
                       std::string_view(large), std::string_view(small.bytes)});
  ASSERT_EQ(out.bodies.size(), 2U + small.bodies.size());
  EXPECT_EQ(out.bodies[1], large_body);
  EXPECT_EQ(out.bodies.back(), small.bodies.back());
}

TEST(FrameDecoderTest, ShrinkGivesBackWhatASplitFrameTook) {
  // Issue 9, defect 3: an idle connection kept the storage of its largest split frame.
  const std::string body = body_of_size(300 * 1024, 'S');
  const std::string bytes = frame(body);
  frame_decoder decoder;
  const auto out = feed(
      decoder, {std::string_view(bytes).substr(0, 1000), std::string_view(bytes).substr(1000)});
  ASSERT_EQ(out.bodies.size(), 1U);
  EXPECT_GE(decoder.capacity(), body.size());
  decoder.shrink();
  EXPECT_LT(decoder.capacity(), 64U);  // what std::string holds without a heap block
  EXPECT_EQ(decoder.buffered(), 0U);
}

TEST(FrameDecoderTest, LengthHelpersAreBigEndian) {
  char bytes[4];
  store_frame_length(bytes, 0x01020304);
  EXPECT_EQ(bytes[0], 1);
  EXPECT_EQ(bytes[1], 2);
  EXPECT_EQ(bytes[2], 3);
  EXPECT_EQ(bytes[3], 4);
  for (const std::uint32_t length : {0U, 1U, 255U, 256U, 65536U, 0x80000000U, 0xFFFFFFFFU}) {
    store_frame_length(bytes, length);
    EXPECT_EQ(load_frame_length(reinterpret_cast<const unsigned char*>(bytes)), length);
  }
}

}  // namespace
}  // namespace tidings::protocol
