// The `tidings` tool's pure helpers: argument parsing, output lines, bench statistics.

#include "helpers.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using namespace std::chrono_literals;
using namespace tidings::cli;

int usage_code_of(void (*call)()) {
  try {
    call();
  } catch (const failure& e) {
    return e.code();
  }
  return -1;
}

TEST(CliHelpers, ParsesDurations) {
  EXPECT_EQ(parse_duration("250ms", "--timeout"), 250ms);
  EXPECT_EQ(parse_duration("5s", "--timeout"), 5s);
  EXPECT_EQ(parse_duration("1.5s", "--timeout"), 1500ms);
  EXPECT_EQ(parse_duration("0.1s", "--timeout"), 100ms);
  EXPECT_EQ(parse_duration("2m", "--timeout"), 120s);
  EXPECT_EQ(parse_duration("1h", "--timeout"), 3600s);
  EXPECT_EQ(parse_duration("1500us", "--timeout"), 2ms);  // rounded up
  EXPECT_EQ(parse_duration("1us", "--timeout"), 1ms);
  EXPECT_EQ(parse_duration("0", "--timeout"), 0ms);
  EXPECT_EQ(parse_duration("0.0", "--timeout"), 0ms);
}

TEST(CliHelpers, RefusesMalformedDurationsAsUsageErrors) {
  for (const char* bad : {"", "5", "s", "-1s", "1.s", ".5s", "1.5", "5 s", "5sec", "1e3ms",
                          "1.0000000001s", "99999999999999999999s", "1000000000000h"}) {
    try {
      (void)parse_duration(bad, "--timeout");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const failure& e) {
      EXPECT_EQ(e.code(), exit_usage);
      EXPECT_EQ(std::string(e.what()).rfind("--timeout: '" + std::string(bad) + "'", 0), 0U)
          << e.what();
    }
  }
}

TEST(CliHelpers, ParsesSizes) {
  EXPECT_EQ(parse_size("128", "--size"), 128U);
  EXPECT_EQ(parse_size("4KiB", "--size"), 4096U);
  EXPECT_EQ(parse_size("1MiB", "--size"), 1048576U);
  EXPECT_EQ(parse_size("2KB", "--size"), 2000U);
  EXPECT_EQ(parse_size("7B", "--size"), 7U);
  for (const char* bad : {"", "KiB", "1.5KiB", "-1", "4kib", "12XB", "99999999999999999999GiB"}) {
    EXPECT_THROW((void)parse_size(bad, "--size"), failure) << bad;
  }
}

TEST(CliHelpers, ParsesHeaders) {
  const auto headers = parse_headers({"a=1", "trace=x=y", "empty="});
  ASSERT_EQ(headers.size(), 3U);
  EXPECT_EQ(headers[0], (std::pair<std::string, std::string>{"a", "1"}));
  EXPECT_EQ(headers[1], (std::pair<std::string, std::string>{"trace", "x=y"}));
  EXPECT_EQ(headers[2], (std::pair<std::string, std::string>{"empty", ""}));
  EXPECT_EQ(usage_code_of([] { (void)parse_headers({"novalue"}); }), exit_usage);
  EXPECT_EQ(usage_code_of([] { (void)parse_headers({"=x"}); }), exit_usage);
  EXPECT_EQ(usage_code_of([] { (void)parse_headers({"a=1", "a=2"}); }), exit_usage);
}

TEST(CliHelpers, ChecksJsonAsTheServerDoes) {
  for (const char* good : {"1", "-5", "null", "true", R"("hi")", R"({"a":[1,2,{"b":null}]})",
                           " [ 1 , 2 ] ", "1e400", R"("\u00e9")"}) {
    EXPECT_FALSE(json_problem(good).has_value()) << good;
  }
  const auto word = json_problem("hello");
  ASSERT_TRUE(word.has_value());
  EXPECT_NE(word->find("not valid JSON"), std::string::npos) << *word;
  EXPECT_NE(word->find("needs quotes"), std::string::npos) << *word;
  EXPECT_EQ(word->find("[json.exception"), std::string::npos) << *word;

  EXPECT_TRUE(json_problem("").has_value());
  EXPECT_TRUE(json_problem("   ").has_value());
  EXPECT_TRUE(json_problem("{\"a\":").has_value());
  EXPECT_TRUE(json_problem("1 2").has_value());
  EXPECT_TRUE(json_problem("\xEF\xBB\xBF"
                           "1")
                  .has_value());                         // a BOM
  EXPECT_TRUE(json_problem(R"("\ud800")").has_value());  // a lone surrogate
  // `data` sits inside the frame's object: 127 levels fit, 128 do not.
  EXPECT_FALSE(json_problem(std::string(127, '[') + std::string(127, ']')).has_value());
  const auto deep = json_problem(std::string(128, '[') + std::string(128, ']'));
  ASSERT_TRUE(deep.has_value());
  EXPECT_NE(deep->find("nesting"), std::string::npos) << *deep;
}

TEST(CliHelpers, ResolvesTheServer) {
  auto choice = resolve_server(std::nullopt, nullptr);
  EXPECT_EQ(choice.address.host, "127.0.0.1");
  EXPECT_EQ(choice.address.port, 4700);
  EXPECT_EQ(choice.source, "default");

  choice = resolve_server(std::nullopt, "");
  EXPECT_EQ(choice.source, "default");

  choice = resolve_server(std::nullopt, "broker:4800");
  EXPECT_EQ(choice.address.host, "broker");
  EXPECT_EQ(choice.address.port, 4800);
  EXPECT_EQ(choice.source, "TIDINGS_SERVER");

  choice = resolve_server(std::string("[::1]:4900"), "broker:4800");
  EXPECT_EQ(choice.address.host, "::1");
  EXPECT_EQ(choice.address.port, 4900);
  EXPECT_EQ(choice.source, "--server");
  EXPECT_EQ(format_address(choice.address), "[::1]:4900");
  EXPECT_EQ(format_address({"localhost", 4700}), "localhost:4700");

  EXPECT_EQ(usage_code_of([] { (void)resolve_server(std::string("a:b"), nullptr); }), exit_usage);
  EXPECT_EQ(usage_code_of([] { (void)resolve_server(std::nullopt, "::1:4700"); }), exit_usage);
  EXPECT_EQ(usage_code_of([] { (void)resolve_server(std::string("host:0"), nullptr); }),
            exit_usage);
}

TEST(CliHelpers, FormatsMessagesAsSingleJsonLines) {
  tidings::client::message_view m;
  m.topic = "orders.created";
  m.data = R"({"order": 42, "total": 9.50})";
  EXPECT_EQ(format_message_line(m),
            R"({"topic":"orders.created","data":{"order": 42, "total": 9.50}})");

  m.reply = "_INBOX.x.1";
  m.headers = R"({"k":"v"})";
  EXPECT_EQ(format_message_line(m), R"({"topic":"orders.created","data":{"order": 42, "total": )"
                                    R"(9.50},"reply":"_INBOX.x.1","headers":{"k":"v"}})");

  // Line breaks between tokens become spaces; escaped ones in strings stay escaped.
  m.data = "{\n  \"text\": \"a\\nb\"\r\n}";
  m.reply = {};
  m.headers = {};
  const auto line = format_message_line(m);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line, R"({"topic":"orders.created","data":{   "text": "a\nb"  }})");
  EXPECT_EQ(nlohmann::json::parse(line)["data"]["text"], "a\nb");
  EXPECT_EQ(format_raw_line("[1,\n2]"), "[1, 2]");

  // Topics may hold `"` and `\`: they are escaped.
  m.topic = R"(odd"topic\x)";
  m.data = "1";
  EXPECT_EQ(nlohmann::json::parse(format_message_line(m))["topic"], R"(odd"topic\x)");
}

TEST(CliHelpers, FormatsNumbers) {
  EXPECT_EQ(format_count(0), "0");
  EXPECT_EQ(format_count(999), "999");
  EXPECT_EQ(format_count(1000), "1,000");
  EXPECT_EQ(format_count(1234567), "1,234,567");
  EXPECT_EQ(format_nanos(512), "512 ns");
  EXPECT_EQ(format_nanos(1'500), "1.50 us");
  EXPECT_EQ(format_nanos(45'200), "45.2 us");
  EXPECT_EQ(format_nanos(210'000), "210 us");
  EXPECT_EQ(format_nanos(2'100'000), "2.10 ms");
  EXPECT_EQ(format_nanos(3'000'000'000), "3.00 s");
  EXPECT_EQ(progress_bar(0, 10, 10), "[>         ]   0%");
  EXPECT_EQ(progress_bar(5, 10, 10), "[=====>    ]  50%");
  EXPECT_EQ(progress_bar(10, 10, 10), "[==========] 100%");
  EXPECT_EQ(progress_bar(20, 10, 4), "[====] 100%");
}

TEST(CliHelpers, HistogramBucketsBoundTheRelativeError) {
  for (std::uint64_t v = 0; v < 128; ++v) {
    EXPECT_EQ(latency_histogram::bucket_upper(latency_histogram::bucket_of(v)), v);
  }
  std::mt19937_64 random(7);
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t v = random() >> (random() % 64);
    const auto upper = latency_histogram::bucket_upper(latency_histogram::bucket_of(v));
    ASSERT_GE(upper, v);
    ASSERT_LE(static_cast<double>(upper - v), static_cast<double>(v) / 128.0) << v;
  }
  EXPECT_EQ(latency_histogram::bucket_upper(latency_histogram::bucket_of(UINT64_MAX)), UINT64_MAX);
}

TEST(CliHelpers, HistogramPercentilesByNearestRank) {
  latency_histogram h;
  EXPECT_EQ(h.percentile(50), 0U);
  for (std::uint64_t v = 1; v <= 100; ++v)
    h.record(v);
  EXPECT_EQ(h.count(), 100U);
  EXPECT_EQ(h.min(), 1U);
  EXPECT_EQ(h.max(), 100U);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
  EXPECT_EQ(h.percentile(50), 50U);
  EXPECT_EQ(h.percentile(90), 90U);
  EXPECT_EQ(h.percentile(99), 99U);
  EXPECT_EQ(h.percentile(99.9), 100U);
  EXPECT_EQ(h.percentile(100), 100U);
  EXPECT_EQ(h.percentile(0), 1U);

  // Large values: within 1%, never above the exact maximum.
  latency_histogram big;
  for (std::uint64_t v = 1; v <= 1000; ++v)
    big.record(v * 1'000'000);
  const auto p50 = big.percentile(50);
  EXPECT_GE(p50, 500'000'000U);
  EXPECT_LE(p50, 505'000'000U);
  EXPECT_EQ(big.percentile(100), 1'000'000'000U);

  latency_histogram merged;
  merged.merge(h);
  merged.merge(big);
  EXPECT_EQ(merged.count(), 1100U);
  EXPECT_EQ(merged.min(), 1U);
  EXPECT_EQ(merged.max(), 1'000'000'000U);
}

TEST(CliHelpers, Throughput) {
  const auto t = compute_throughput(1'000'000, 128, 2s);
  EXPECT_DOUBLE_EQ(t.messages_per_second, 500'000.0);
  EXPECT_DOUBLE_EQ(t.megabytes_per_second, 64.0);
  EXPECT_DOUBLE_EQ(compute_throughput(5, 1, 0s).messages_per_second, 0.0);
  EXPECT_EQ(split_evenly(10, 3), (std::vector<std::uint64_t>{4, 3, 3}));
  EXPECT_EQ(split_evenly(2, 4), (std::vector<std::uint64_t>{1, 1, 0, 0}));
  EXPECT_TRUE(split_evenly(5, 0).empty());
}

TEST(CliHelpers, BenchPayloadsCarryTheirSendTime) {
  auto payload = make_bench_payload(64);
  ASSERT_EQ(payload.size(), 66U);
  EXPECT_FALSE(json_problem(payload).has_value());
  stamp_bench_payload(payload, 0x0123456789abcdefULL);
  EXPECT_EQ(payload.substr(0, 17), "\"0123456789abcdef");
  EXPECT_EQ(read_bench_stamp(payload), 0x0123456789abcdefULL);
  EXPECT_FALSE(json_problem(payload).has_value());

  auto tiny = make_bench_payload(4);
  EXPECT_EQ(tiny, "\"xxxx\"");
  stamp_bench_payload(tiny, 42);
  EXPECT_EQ(tiny, "\"xxxx\"");
  EXPECT_FALSE(read_bench_stamp(tiny).has_value());
  EXPECT_FALSE(read_bench_stamp("\"zzzzzzzzzzzzzzzzzz\"").has_value());
}

}  // namespace
