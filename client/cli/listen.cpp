// tidings sub and tidings reply: subscribe, print (and answer) messages until --count
// is reached or a signal asks to stop.

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>

#include "common.hpp"
#include "tidings/protocol/topic.hpp"

namespace tidings::cli {
namespace {

using namespace std::chrono_literals;

// Long enough for a backlog of messages to be printed; a stuck server cannot hold the
// process longer.
constexpr auto drain_timeout = 5s;

struct listen_settings {
  std::string mode;  // "sub" or "reply"
  std::string pattern;
  std::string queue;
  std::uint64_t count = 0;  // 0: until a signal
  bool raw = false;
  std::optional<std::string> reply_data;  // reply: answer with this instead of an echo
};

// One subscription on one connection, on the calling thread.
class listener {
 public:
  listener(connection_flags::target target, listen_settings settings)
      : settings_(std::move(settings)), address_(std::move(target.address)) {
    auto& options = target.options;
    // A long-running subscriber rides out a server restart; it gives up (exit 1) when
    // the server stays away for about five minutes.
    options.reconnect.enabled = true;
    options.reconnect.max_attempts = 60;
    options.on_disconnected = [this](const client::error_code& ec) {
      if (stopping_) return;
      std::fprintf(stderr, "tidings: disconnected from %s: %s; reconnecting\n", address_.c_str(),
                   describe(ec, {}).c_str());
    };
    options.on_reconnected = [this] {
      std::fprintf(stderr, "tidings: reconnected to %s\n", address_.c_str());
    };
    options.on_error = [this](const client::error& e) {
      std::fprintf(stderr, "tidings: %s: %s\n", address_.c_str(),
                   describe(e.code, e.message).c_str());
    };
    options.on_closed = [this](const client::error_code& ec) {
      if (stopping_) return;
      fail(failure(exit_error, "connection to " + address_ + " closed: " + describe(ec, {})));
    };
    connection_.emplace(io_.get_executor(), std::move(options));
  }

  int run() {
    signals_.async_wait([this](const client::error_code& ec, int) {
      if (ec) return;
      // A second signal does not wait for the drain.
      signals_.async_wait([](const client::error_code& again, int) {
        if (!again) std::_Exit(exit_error);
      });
      finish(exit_ok);
    });
    asio::co_spawn(io_, start(), [](const std::exception_ptr& e) {
      if (e) std::rethrow_exception(e);
    });
    io_.run();
    if (problem_) throw *problem_;
    return exit_code_;
  }

 private:
  asio::awaitable<void> start() {
    auto result = co_await await_status([this](client::detail::status_completion done) {
      connection_->start_connect(std::move(done));
    });
    if (stopping_) co_return;
    if (result) {
      fail(connect_failure(address_, result.code, result.message));
      co_return;
    }
    client::subscribe_options extra;
    extra.queue = settings_.queue;
    // The server stops at exactly `count` deliveries, so a queue group's other members
    // get the rest.
    extra.max = settings_.count;
    result = co_await await_status([this, &extra](client::detail::status_completion done) {
      connection_->subscribe_confirmed(
          settings_.pattern, [this](const client::message_view& m) { on_message(m); }, extra,
          std::move(done));
    });
    if (stopping_) co_return;
    if (result) {
      fail(failure(exit_code_for(result.code), "cannot subscribe to " + settings_.pattern + " on " +
                                                   address_ + ": " +
                                                   describe(result.code, result.message)));
      co_return;
    }
    // Scripts and tests wait for this exact line before they publish.
    std::fprintf(stderr, "subscribed: %s\n", settings_.pattern.c_str());
  }

  void on_message(const client::message_view& message) {
    if (settings_.count != 0 && handled_ >= settings_.count) return;
    try {
      if (settings_.mode == "reply") {
        if (message.reply.empty()) {
          std::fprintf(stderr, "tidings: a message on %.*s has no reply topic; not answered\n",
                       static_cast<int>(message.topic.size()), message.topic.data());
          return;
        }
        const auto answer =
            settings_.reply_data ? std::string_view(*settings_.reply_data) : message.data;
        if (const auto ec = connection_->publish(message.reply, answer)) {
          std::fprintf(stderr, "tidings: cannot answer on %.*s: %s\n",
                       static_cast<int>(message.reply.size()), message.reply.data(),
                       describe(ec, {}).c_str());
        }
      }
      write_line(settings_.raw ? format_raw_line(message.data) : format_message_line(message));
    } catch (const failure& e) {
      fail(e);
      return;
    }
    ++handled_;
    if (settings_.count != 0 && handled_ == settings_.count) finish(exit_ok);
  }

  // Stops receiving, lets what is in flight arrive, and ends the loop.
  void finish(int code) {
    if (stopping_) return;
    stopping_ = true;
    exit_code_ = code;
    connection_->drain(drain_timeout, [this](const client::error&) {
      signals_.cancel();
      io_.stop();
    });
  }

  void fail(const failure& why) {
    if (stopping_) return;
    stopping_ = true;
    problem_ = why;
    connection_->close();
    signals_.cancel();
    io_.stop();
  }

  listen_settings settings_;
  std::string address_;
  asio::io_context io_;
  asio::signal_set signals_{io_, SIGINT, SIGTERM};
  std::optional<client::connection> connection_;
  bool stopping_ = false;
  int exit_code_ = exit_ok;
  std::optional<failure> problem_;
  std::uint64_t handled_ = 0;
};

void check_pattern(const std::string& pattern, const std::string& queue) {
  if (!protocol::is_valid_pattern(pattern)) {
    throw usage_error("PATTERN '" + pattern +
                      "' is not a valid pattern (tokens separated by '.'; '*' stands for one "
                      "whole token, a final '>' for one or more)");
  }
  if (!queue.empty() && !protocol::is_valid_queue_name(queue)) {
    throw usage_error("--queue: '" + queue +
                      "' is not a queue name (1 to 64 printable ASCII characters, no spaces)");
  }
}

class sub_command final : public command {
 public:
  explicit sub_command(CLI::App& app) {
    subcommand_ = app.add_subcommand("sub", "Subscribe and print messages as JSON lines");
    details_ =
        "Prints each message on PATTERN as one line of JSON on stdout:\n"
        "  {\"topic\":...,\"data\":...,\"reply\":...,\"headers\":...}\n"
        "data and headers are the publisher's JSON as sent; reply and headers appear only\n"
        "when set. Writes `subscribed: PATTERN` to stderr once the server has confirmed the\n"
        "subscription. SIGINT or SIGTERM stop it after the messages in flight (exit 0).\n"
        "Examples:\n"
        "  tidings sub 'orders.>'\n"
        "  tidings sub jobs --queue workers --count 10 --raw";
    auto& c = *subcommand_;
    c.add_option("PATTERN", settings_.pattern, "Topic pattern (* for one token, > for the rest)")
        ->required();
    c.add_option("-q,--queue", settings_.queue,
                 "Join this queue group: each message goes to one member")
        ->option_text("NAME");
    c.add_option("-n,--count", settings_.count, "Exit 0 after N messages")
        ->option_text("N")
        ->check(positive_integer());
    c.add_flag("--raw", settings_.raw, "Print only the data of each message");
    flags_.add_to(c);
    settings_.mode = "sub";
  }

  int run() override {
    check_pattern(settings_.pattern, settings_.queue);
    return listener(flags_.resolve("sub"), settings_).run();
  }

 private:
  listen_settings settings_;
  connection_flags flags_;
};

class reply_command final : public command {
 public:
  explicit reply_command(CLI::App& app) {
    subcommand_ = app.add_subcommand("reply", "Answer requests (a responder)");
    details_ =
        "Answers each request on PATTERN with --data, or else with the request's own data,\n"
        "and prints the request like sub does. Writes `subscribed: PATTERN` to stderr once\n"
        "the server has confirmed. SIGINT or SIGTERM stop it (exit 0).\n"
        "Examples:\n"
        "  tidings reply time.now --data '\"12:00\"'\n"
        "  tidings reply echo --queue echoers";
    auto& c = *subcommand_;
    c.add_option("PATTERN", settings_.pattern, "Topic pattern to answer on")->required();
    data_option_ = c.add_option("--data", data_, "Answer with this JSON instead of an echo")
                       ->option_text("JSON");
    c.add_option("-q,--queue", settings_.queue,
                 "Join this queue group: each request goes to one member")
        ->option_text("NAME");
    c.add_option("-n,--count", settings_.count, "Exit 0 after answering N requests")
        ->option_text("N")
        ->check(positive_integer());
    c.add_flag("--raw", settings_.raw, "Print only the data of each request");
    flags_.add_to(c);
    settings_.mode = "reply";
  }

  int run() override {
    check_pattern(settings_.pattern, settings_.queue);
    if (data_option_->count() > 0) {
      if (const auto problem = json_problem(data_)) throw usage_error("--data: " + *problem);
      settings_.reply_data = data_;
    }
    return listener(flags_.resolve("reply"), settings_).run();
  }

 private:
  listen_settings settings_;
  std::string data_;
  CLI::Option* data_option_ = nullptr;
  connection_flags flags_;
};

}  // namespace

std::unique_ptr<command> add_sub_command(CLI::App& app) {
  return std::make_unique<sub_command>(app);
}

std::unique_ptr<command> add_reply_command(CLI::App& app) {
  return std::make_unique<reply_command>(app);
}

}  // namespace tidings::cli
