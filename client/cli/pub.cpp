// tidings pub: publish one message, N copies, or each line of stdin.

#include <chrono>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "tidings/client/blocking_client.hpp"
#include "tidings/protocol/topic.hpp"

namespace tidings::cli {
namespace {

class pub_command final : public command {
 public:
  explicit pub_command(CLI::App& app) {
    subcommand_ = app.add_subcommand("pub", "Publish a message (or each line of stdin)");
    details_ =
        "Publishes DATA, a JSON value, to TOPIC (--count times), or with DATA - each line of\n"
        "stdin as one message. Exits 0 once the server has processed every message.\n"
        "Examples:\n"
        "  tidings pub orders.created '{\"order\":42}' -H source=shop --reply orders.ack\n"
        "  tidings pub greetings '\"hello\"' --count 100 --rate 10\n"
        "  jq -c '.[]' events.json | tidings pub events -";
    auto& c = *subcommand_;
    c.add_option("TOPIC", topic_, "Topic to publish to (concrete: no * or >)")->required();
    c.add_option("DATA", data_,
                 "The message: one JSON value (a string needs quotes:\n'\"hi\"'), or - for "
                 "each line of stdin (empty lines\nare skipped)")
        ->required();
    count_option_ = c.add_option("-n,--count", count_, "Publish DATA N times [1]")
                        ->option_text("N")
                        ->check(positive_integer());
    rate_option_ = c.add_option("--rate", rate_, "Publish at most this many messages per second")
                       ->option_text("MSGS_PER_SEC")
                       ->check(positive_number());
    c.add_option("--reply", reply_, "Reply topic to put on the messages")->option_text("TOPIC");
    c.add_option("-H,--header", headers_, "A header NAME=VALUE; repeat for more")
        ->option_text("NAME=VALUE")
        ->allow_extra_args(false);
    c.add_flag("--confirm", confirm_,
               "Wait for the server's ok for each message (slower;\nstops at the first refusal)");
    c.add_option("--timeout", timeout_text_,
                 "Longest wait for a confirmation and for the final\nflush [10s]")
        ->option_text("DURATION");
    flags_.add_to(c);
  }

  int run() override {
    if (!protocol::is_valid_topic(topic_)) {
      throw usage_error("TOPIC '" + topic_ +
                        "' is not a valid concrete topic (tokens separated by " +
                        "'.', no '*' or '>', see docs/CLI.md)");
    }
    if (!reply_.empty() && !protocol::is_valid_topic(reply_)) {
      throw usage_error("--reply: '" + reply_ + "' is not a valid concrete topic");
    }
    const bool from_stdin = data_ == "-";
    if (from_stdin && count_option_->count() > 0) {
      throw usage_error("--count cannot be used with DATA - (each stdin line is one message)");
    }
    if (!from_stdin) {
      if (const auto problem = json_problem(data_)) throw usage_error("DATA: " + *problem);
    }
    headers_list_ = parse_headers(headers_);
    timeout_ = parse_duration(timeout_text_, "--timeout");
    extra_.reply = reply_;
    extra_.headers = headers_list_.empty() ? nullptr : &headers_list_;

    auto target = flags_.resolve("pub");
    address_ = target.address;
    target.options.on_error = [this](const client::error& e) { note_async_error(e); };
    std::optional<client::blocking_client> client;
    try {
      client.emplace(std::move(target.options));
    } catch (const client::exception& e) {
      throw connect_failure(address_, e.code(), e.server_message());
    }

    pace_start_ = std::chrono::steady_clock::now();
    std::optional<failure> input_problem;
    if (from_stdin) {
      std::string line;
      std::uint64_t number = 0;
      while (std::getline(std::cin, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        if (const auto problem = json_problem(line)) {
          // What came before was published: flush it, then report.
          input_problem = usage_error("stdin line " + std::to_string(number) + ": " + *problem);
          break;
        }
        publish_one(*client, line);
      }
    } else {
      for (std::uint64_t i = 0; i < count_; ++i)
        publish_one(*client, data_);
    }

    try {
      client->flush(timeout_);
    } catch (const client::exception& e) {
      if (e.code() == client::errc::timeout) {
        throw failure(exit_timeout, "flush to " + address_ + " timed out after " + timeout_text_ +
                                        " (the server did not confirm the messages)");
      }
      throw failure(exit_code_for(e.code()), "flush to " + address_ + " failed: " + describe(e));
    }
    // The pong follows every `err` for the frames before it, but the library posts
    // on_error to the client's thread while it completes the flush at once: a call
    // through that thread (state()) runs after those notifications.
    (void)client->state();
    report_async_errors();
    if (input_problem) throw *input_problem;
    return exit_ok;
  }

 private:
  void publish_one(client::blocking_client& client, const std::string& data) {
    if (rate_option_->count() > 0) {
      const auto due =
          pace_start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(static_cast<double>(published_) / rate_));
      std::this_thread::sleep_until(due);
    }
    try {
      if (confirm_) {
        client.publish_confirmed(topic_, data, extra_, timeout_);
      } else {
        client.publish(topic_, data, extra_);
      }
    } catch (const client::exception& e) {
      if (client::is_server_error(e.code()) &&
          client::server_code(e.code()) == protocol::error_code::no_responders) {
        throw failure(exit_no_responders, "no responders for " + topic_ + " on " + address_);
      }
      if (e.code() == client::errc::timeout) {
        throw failure(exit_timeout, "publish to " + topic_ + " on " + address_ +
                                        ": no confirmation within " + timeout_text_);
      }
      throw failure(exit_code_for(e.code()),
                    "cannot publish to " + topic_ + " on " + address_ + ": " + describe(e));
    }
    ++published_;
  }

  // Runs on the client's thread: an `err` without id answers a fire-and-forget publish.
  void note_async_error(const client::error& e) {
    const std::lock_guard lock(mutex_);
    if (client::is_server_error(e.code) &&
        client::server_code(e.code) == protocol::error_code::no_responders) {
      ++no_responders_;
      return;
    }
    if (!first_error_) first_error_ = e;
  }

  void report_async_errors() {
    const std::lock_guard lock(mutex_);
    if (first_error_) {
      throw failure(exit_code_for(first_error_->code),
                    "the server at " + address_ + " refused a publish to " + topic_ + ": " +
                        describe(first_error_->code, first_error_->message));
    }
    if (no_responders_ > 0) {
      throw failure(exit_no_responders, "no responders for " + topic_ + " on " + address_ + " (" +
                                            std::to_string(no_responders_) + " of " +
                                            std::to_string(published_) + " messages)");
    }
  }

  std::string topic_;
  std::string data_;
  std::uint64_t count_ = 1;
  double rate_ = 0;
  std::string reply_;
  std::vector<std::string> headers_;
  bool confirm_ = false;
  std::string timeout_text_ = "10s";
  CLI::Option* count_option_ = nullptr;
  CLI::Option* rate_option_ = nullptr;
  connection_flags flags_;

  client::header_list headers_list_;
  client::publish_options extra_;
  std::chrono::milliseconds timeout_{};
  std::string address_;
  std::chrono::steady_clock::time_point pace_start_;
  std::uint64_t published_ = 0;

  std::mutex mutex_;
  std::optional<client::error> first_error_;
  std::uint64_t no_responders_ = 0;
};

}  // namespace

std::unique_ptr<command> add_pub_command(CLI::App& app) {
  return std::make_unique<pub_command>(app);
}

}  // namespace tidings::cli
