// Micro-benchmarks of the protocol library's hot paths: what a broker does per inbound
// frame (decode + parse), per delivery (msg prefix) and per publish (shared msg body),
// and topic matching. Results and the command line are in docs/BENCHMARKS.md.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tidings/protocol/encoder.hpp"
#include "tidings/protocol/frame_decoder.hpp"
#include "tidings/protocol/json.hpp"
#include "tidings/protocol/messages.hpp"
#include "tidings/protocol/parser.hpp"
#include "tidings/protocol/topic.hpp"

namespace {

using namespace tidings::protocol;

std::string make_frame(std::string_view body) {
  std::string out(frame_prefix_size, '\0');
  store_frame_length(out.data(), static_cast<std::uint32_t>(body.size()));
  out += body;
  return out;
}

// A pub frame whose `data` is `data`, padded through a string so that the whole frame
// (prefix included) is exactly `frame_size` bytes when that is asked for.
std::string pub_frame(std::string_view data) {
  return make_frame(R"({"op":"pub","topic":"orders.created.eu","id":12345,"data":)" +
                    std::string(data) + "}");
}

// A JSON string literal of `size` bytes of `fill`, quotes excluded. (Built with append:
// g++ 12 -O3 warns falsely (-Wrestrict) about `"\"" + std::string(...)`.)
std::string quoted(std::size_t size, char fill) {
  std::string out;
  out.reserve(size + 2);
  out += '"';
  out.append(size, fill);
  out += '"';
  return out;
}

std::string pub_frame_of_size(std::size_t frame_size) {
  const std::size_t overhead = pub_frame(quoted(0, 'x')).size();
  return pub_frame(quoted(frame_size - overhead, 'x'));
}

// About `size` bytes of nested JSON: objects of numbers, strings, arrays and literals.
std::string nested_data(std::size_t size) {
  std::string out = "{\"items\":[";
  for (int i = 0; out.size() + 120 < size; ++i) {
    if (i != 0) out += ',';
    out += R"({"id":)" + std::to_string(i * 7919) + R"(,"name":"item-)" + std::to_string(i) +
           R"(","price":)" + std::to_string(i) + R"(.25,"tags":["a","b"],"ok":true,"n":null})";
  }
  out += "],\"more\":{\"x\":{\"y\":[1,2,3]}}}";
  // Pad with whitespace before the final brace.
  out.pop_back();
  if (out.size() + 1 < size) out.append(size - out.size() - 1, ' ');
  out += '}';
  return out;
}

// The broker's read path: one frame_decoder::next and one client_parser::parse per frame.
void decode_and_parse(benchmark::State& state, const std::string& frame) {
  frame_decoder decoder;
  client_parser parser;
  client_frame out;
  for (auto _ : state) {
    const auto r = decoder.next(frame);
    if (r.state != frame_decoder::status::frame) std::abort();
    const auto parsed = parser.parse(r.body, out);
    benchmark::DoNotOptimize(parsed);
    benchmark::DoNotOptimize(out);
  }
  {
    // Check once, outside the timing, that the frame is what it claims to be.
    const auto r = decoder.next(frame);
    if (!parser.parse(r.body, out) || out.kind != op::pub) std::abort();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(frame.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["frame_bytes"] = static_cast<double>(frame.size());
}

void BM_DecodeParsePub100(benchmark::State& state) {
  static const std::string frame = pub_frame_of_size(100);
  decode_and_parse(state, frame);
}
BENCHMARK(BM_DecodeParsePub100);

void BM_DecodeParsePub4KString(benchmark::State& state) {
  static const std::string frame = pub_frame(quoted(4000, 's'));
  decode_and_parse(state, frame);
}
BENCHMARK(BM_DecodeParsePub4KString);

void BM_DecodeParsePub4KNested(benchmark::State& state) {
  static const std::string frame = pub_frame(nested_data(4000));
  decode_and_parse(state, frame);
}
BENCHMARK(BM_DecodeParsePub4KNested);

// A frame that arrives in two reads takes the copying path.
void BM_DecodeSplitPub4K(benchmark::State& state) {
  static const std::string frame = pub_frame(quoted(4000, 's'));
  const std::string_view first = std::string_view(frame).substr(0, frame.size() / 2);
  const std::string_view second = std::string_view(frame).substr(frame.size() / 2);
  frame_decoder decoder;
  for (auto _ : state) {
    benchmark::DoNotOptimize(decoder.next(first));
    const auto r = decoder.next(second);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(frame.size()));
}
BENCHMARK(BM_DecodeSplitPub4K);

void BM_IsValid4KString(benchmark::State& state) {
  static const std::string text = quoted(4094, 's');
  for (auto _ : state)
    benchmark::DoNotOptimize(json::is_valid(text));
  if (!json::is_valid(text)) std::abort();
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(text.size()));
}
BENCHMARK(BM_IsValid4KString);

void BM_IsValid4KNested(benchmark::State& state) {
  static const std::string text = nested_data(4096);
  for (auto _ : state)
    benchmark::DoNotOptimize(json::is_valid(text));
  if (!json::is_valid(text)) std::abort();
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(text.size()));
}
BENCHMARK(BM_IsValid4KNested);

// Pattern matching against a three-token topic; arg 0: literal, 1: `*`, 2: `>`, 3: no
// match at the last token.
void BM_PatternMatch(benchmark::State& state) {
  static const std::vector<std::string_view> patterns = {"orders.created.eu", "orders.*.eu",
                                                         "orders.>", "orders.created.us"};
  const std::string_view pattern = patterns[static_cast<std::size_t>(state.range(0))];
  const std::string_view topic = "orders.created.eu";
  for (auto _ : state) {
    benchmark::DoNotOptimize(pattern.data());
    benchmark::DoNotOptimize(topic.data());
    benchmark::DoNotOptimize(pattern_matches(pattern, topic));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetLabel(std::string(pattern));
}
BENCHMARK(BM_PatternMatch)->DenseRange(0, 3);

void BM_IsValidPattern(benchmark::State& state) {
  const std::string_view pattern = "orders.*.eu.>";
  for (auto _ : state) {
    benchmark::DoNotOptimize(pattern.data());
    benchmark::DoNotOptimize(is_valid_pattern(pattern));
  }
}
BENCHMARK(BM_IsValidPattern);

// Fan-out of one publish to `range(0)` subscribers: one shared body, one prefix each.
void BM_FanOutMsg(benchmark::State& state) {
  const auto subscribers = static_cast<std::uint64_t>(state.range(0));
  const std::string data =
      R"({"order":42,"total":9.5,"items":["a","b","c"],"note":)" + quoted(40, 'n') + "}";
  std::string body;
  for (auto _ : state) {
    body.clear();
    encode_msg_body(body, "orders.created.eu", data);
    for (std::uint64_t sid = 1; sid <= subscribers; ++sid) {
      const msg_prefix prefix(sid * 1000003, body.size());
      benchmark::DoNotOptimize(prefix.data());
    }
    benchmark::DoNotOptimize(body.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(subscribers));
  state.counters["body_bytes"] = static_cast<double>(body.size());
}
BENCHMARK(BM_FanOutMsg)->Arg(1)->Arg(100);

void BM_MsgPrefix(benchmark::State& state) {
  std::uint64_t sid = 1;
  for (auto _ : state) {
    const msg_prefix prefix(sid, 120);
    benchmark::DoNotOptimize(prefix.data());
    sid = sid * 31 % 9007199254740991;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_MsgPrefix);

}  // namespace

BENCHMARK_MAIN();
