#pragma once

// The pure parts of the `tidings` tool: argument parsing, output formatting and the
// benchmark's statistics. No I/O and no connection, so that they can be unit tested.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tidings/client/message.hpp"
#include "tidings/client/options.hpp"

namespace tidings::cli {

// The process's exit status; docs/CLI.md and every --help footer list the same values.
enum exit_code : int {
  exit_ok = 0,
  exit_error = 1,          // the server refused something, or the connection failed
  exit_usage = 2,          // bad arguments or input (invalid JSON, unknown option, ...)
  exit_timeout = 3,        // no answer in time (connect, flush, request, bench delivery)
  exit_no_responders = 4,  // a request (or a publish with --reply) reached no subscriber
};

// A failure that ends the command: printed as one line `tidings: MESSAGE` on stderr.
class failure : public std::runtime_error {
 public:
  failure(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

inline failure usage_error(const std::string& message) {
  return {exit_usage, message};
}

// `250ms`, `5s`, `1.5s`, `2m`, `1h`, `500us` (rounded up to whole milliseconds); `0`
// needs no unit. Throws usage_error naming `what` (the option) when malformed.
std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what);

// Bytes: `512`, `4KiB`, `1MiB`, `1KB` (powers of 1024 for KiB/MiB/GiB, of 1000 for
// KB/MB/GB). Throws usage_error naming `what`.
std::uint64_t parse_size(std::string_view text, std::string_view what);

// `name=value` (the first `=` separates; the value may be empty, the name may not).
// Throws usage_error when a name is missing or repeated.
client::header_list parse_headers(const std::vector<std::string>& specs);

// Why `text` is not a JSON value the server accepts as `data`, or nullopt when it is.
std::optional<std::string> json_problem(std::string_view text);

// Where to connect: the flag if given, else the environment variable's value if set and
// not empty, else 127.0.0.1:4700. `env_value` is the variable's value (nullptr: unset).
struct server_choice {
  client::server_address address;
  std::string source;  // "--server", "TIDINGS_SERVER" or "default", for error messages
};
server_choice resolve_server(const std::optional<std::string>& flag, const char* env_value);

// `host:port`, with brackets around an IPv6 address.
std::string format_address(const client::server_address& address);

// One message as one line of JSON (without the newline): {"topic":...,"data":...} plus
// "reply" and "headers" when present. data and headers are embedded as the publisher's
// raw JSON; only line breaks between tokens (where JSON allows any whitespace) become
// spaces, so that a message is always exactly one line.
std::string format_message_line(const client::message_view& message);
// The data alone, with the same line-break rule.
std::string format_raw_line(std::string_view data);

// "0.21 ms", "12.3 us", "1.50 s": a duration given in nanoseconds, 3 significant digits.
std::string format_nanos(std::uint64_t nanos);
// "1,234,567": thousands separated by commas.
std::string format_count(std::uint64_t value);
// "[=========>          ]  45%": `width` characters between the brackets.
std::string progress_bar(std::uint64_t done, std::uint64_t total, std::size_t width);

// A latency histogram with a bounded relative error: values up to 2^sub_bits are exact;
// above, each power of two is split into 2^sub_bits buckets, so a recorded value is
// reported at most 1/2^sub_bits (under 1%) above its true value. The maximum is exact.
// Fixed size (no allocation per sample), mergeable across threads after the run.
class latency_histogram {
 public:
  static constexpr unsigned sub_bits = 7;

  void record(std::uint64_t value) noexcept;
  void merge(const latency_histogram& other) noexcept;

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t max() const noexcept { return max_; }
  std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  double mean() const noexcept {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
  }
  // The smallest recorded value v such that at least `percent`% of the samples are <= v
  // (nearest rank), as the upper edge of its bucket, capped by the exact maximum. 0 when
  // empty.
  std::uint64_t percentile(double percent) const noexcept;

  // Exposed for the tests: the bucket a value falls in, and that bucket's upper edge.
  static std::size_t bucket_of(std::uint64_t value) noexcept;
  static std::uint64_t bucket_upper(std::size_t bucket) noexcept;

 private:
  static constexpr std::size_t sub_count = std::size_t{1} << sub_bits;
  static constexpr std::size_t bucket_count = (64 - sub_bits + 1) * sub_count;

  std::array<std::uint64_t, bucket_count> buckets_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
};

// Throughput of `messages` messages of `bytes_each` bytes over `elapsed`.
struct throughput {
  double messages_per_second = 0;
  double megabytes_per_second = 0;  // 10^6 bytes
};
throughput compute_throughput(std::uint64_t messages, std::uint64_t bytes_each,
                              std::chrono::nanoseconds elapsed);

// How `total` messages are split among `parts` publishers: the first ones take one more.
std::vector<std::uint64_t> split_evenly(std::uint64_t total, std::uint64_t parts);

// The benchmark's payload: a JSON string whose contents are `size` bytes. With size >=
// timestamp_digits they start with a send time as fixed-width hex digits, so that a
// subscriber can compute the latency; below that no time is carried.
inline constexpr std::size_t timestamp_digits = 16;
std::string make_bench_payload(std::size_t size);
// Writes `nanos` into a payload made by make_bench_payload (no-op when too small).
void stamp_bench_payload(std::string& payload, std::uint64_t nanos) noexcept;
// The send time carried by a payload, if any.
std::optional<std::uint64_t> read_bench_stamp(std::string_view payload) noexcept;

}  // namespace tidings::cli
