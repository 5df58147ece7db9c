// fan_out: one publisher, many subscribers, each getting every message that matches its
// pattern (asyncio's broadcast to several consumer queues). Callback style: every step
// is a completion handler that starts the next one, as in Asio's classic examples.
//
//                          +--> fr-desk   prices.eu.fr   (exact topic)
//   publisher --pub--> [broker] --> eu-desk   prices.eu.*    (one token)
//                          +--> fr-watch  prices.*.fr    (one token, in the middle)
//                          +--> audit     prices.>       (one or more tokens)
//                          +--> archive   prices.>       (a second plain subscriber: it
//                                                         gets everything too, unlike a
//                                                         queue group)
//
// Steps: connect all -> subscribe all (each confirmed by the broker) -> publish ->
// flush the publisher -> flush each subscriber -> compare what each received with what
// it should have, message by message and in order.
//
// Run it against a broker (scripts/run.sh starts one on port 4700):
//   build/examples/fan_out --messages 100

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/command_line.hpp"
#include "tidings/asio.hpp"
#include "tidings/client/connection.hpp"

namespace {

namespace asio = tidings::asio;
namespace client = tidings::client;
using json = nlohmann::json;
using namespace std::chrono_literals;

struct subscriber_spec {
  std::string_view name;
  std::string_view pattern;
};

constexpr subscriber_spec subscriber_specs[] = {
    {"fr-desk", "prices.eu.fr"}, {"eu-desk", "prices.eu.*"}, {"fr-watch", "prices.*.fr"},
    {"audit", "prices.>"},       {"archive", "prices.>"},
};

// Message i goes to published_topics[i % 5]. The last two reach few or no subscribers:
// `prices.eu.fr.close` has one token too many for `*`, `quotes.eu.fr` matches nothing.
constexpr std::string_view published_topics[] = {
    "prices.eu.fr", "prices.eu.de", "prices.us.nyse", "prices.eu.fr.close", "quotes.eu.fr",
};

// PROTOCOL.md section 5, restated here so the check does not trust the broker's own
// matcher: `*` is exactly one token, a final `>` is one or more.
bool matches(std::string_view pattern, std::string_view topic) {
  const auto next_token = [](std::string_view& rest) {
    const auto dot = rest.find('.');
    const auto token = rest.substr(0, dot);
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
    return token;
  };
  while (!pattern.empty()) {
    if (topic.empty()) return false;
    const auto wanted = next_token(pattern);
    if (wanted == ">") return true;
    const auto token = next_token(topic);
    if (wanted != "*" && wanted != token) return false;
  }
  return topic.empty();
}

class fan_out {
 public:
  fan_out(asio::io_context& io, client::options settings, int messages,
          std::chrono::seconds timeout)
      : base_(std::move(settings)),
        prefix_(tidings::examples::run_prefix("fan_out")),
        messages_(messages),
        timeout_(timeout),
        publisher_(io.get_executor(), connection_settings("publisher")),
        deadline_(io) {
    for (const auto& spec : subscriber_specs) {
      auto sub = std::make_unique<subscriber>(io.get_executor(), std::string(spec.name),
                                              std::string(spec.pattern),
                                              connection_settings(std::string(spec.name)));
      for (int seq = 0; seq < messages_; ++seq) {
        if (matches(spec.pattern, published_topics[static_cast<std::size_t>(seq) % 5])) {
          sub->expected.push_back(seq);
        }
      }
      subscribers_.push_back(std::move(sub));
    }
  }

  void start() {
    std::cout << "fan_out: " << messages_ << " messages to " << subscribers_.size()
              << " subscribers via " << tidings::examples::server_name(base_) << " (topics under "
              << prefix_ << ".)\n";
    deadline_.expires_after(timeout_);
    deadline_.async_wait([this](const client::error_code& ec) {
      if (!ec) fail("timed out after " + std::to_string(timeout_.count()) + "s while " + phase_);
    });

    phase_ = "connecting";
    pending_ = subscribers_.size() + 1;
    publisher_.async_connect(
        [this](const client::error_code& ec) { on_connected("publisher", ec); });
    for (auto& sub : subscribers_) {
      sub->connection.async_connect(
          [this, name = sub->name](const client::error_code& ec) { on_connected(name, ec); });
    }
  }

  int exit_code() const { return exit_code_; }

 private:
  struct subscriber {
    subscriber(asio::any_io_executor executor, std::string subscriber_name, std::string relative,
               client::options settings)
        : name(std::move(subscriber_name)),
          short_pattern(std::move(relative)),
          connection(std::move(executor), std::move(settings)) {}

    std::string name;
    std::string short_pattern;  // without the run's prefix, for the printout
    client::connection connection;
    client::subscription subscription;
    std::vector<int> expected;  // sequence numbers it must receive, in this order
    std::vector<int> received;
    std::vector<std::string> problems;
  };

  // Lost connections are not retried: core delivery is at most once, so a subscriber
  // would miss messages and fail the check later anyway. Better to say so at once.
  client::options connection_settings(const std::string& role) {
    client::options settings = base_;
    settings.name = "fan_out/" + role;
    settings.reconnect.enabled = false;
    settings.on_disconnected = [this, role](const client::error_code& ec) {
      if (!finished_) fail(role + " lost its connection: " + ec.message());
    };
    settings.on_error = [this, role](const client::error& e) {
      fail(role + " got an error from the broker: " + e.code.message() + " (" + e.message + ")");
    };
    return settings;
  }

  std::string topic(std::string_view relative) const {
    return prefix_ + "." + std::string(relative);
  }

  // Counts one completion of the current phase; true when it was the last one.
  bool completes_phase() { return --pending_ == 0 && !finished_; }

  void on_connected(const std::string& who, const client::error_code& ec) {
    if (finished_) return;
    if (ec) {
      fail(who + " " + tidings::examples::cannot_connect(base_, ec));
      return;
    }
    if (completes_phase()) subscribe_all();
  }

  void subscribe_all() {
    phase_ = "subscribing";
    pending_ = subscribers_.size();
    for (auto& sub_ptr : subscribers_) {
      subscriber& sub = *sub_ptr;
      sub.connection.async_subscribe(
          topic(sub.short_pattern),
          [this, &sub](const client::message_view& delivery) { on_message(sub, delivery); }, {},
          [this, &sub](const client::error_code& ec, client::subscription subscription) {
            if (finished_) return;
            if (ec) {
              fail(sub.name + " cannot subscribe to " + sub.short_pattern + ": " + ec.message());
              return;
            }
            sub.subscription = std::move(subscription);
            std::cout << "  " << std::left << std::setw(9) << sub.name << " subscribed to "
                      << sub.short_pattern << "\n";
            // Every `ok` is in: no message published from now on can miss a subscriber.
            if (completes_phase()) publish_from(0);
          });
    }
  }

  void on_message(subscriber& sub, const client::message_view& delivery) {
    const auto body = json::parse(delivery.data, nullptr, false);
    const auto seq = body.is_object() ? body.find("seq") : body.end();
    if (!body.is_object() || seq == body.end() || !seq->is_number_integer()) {
      sub.problems.push_back("unexpected message " + std::string(delivery.data));
      return;
    }
    const int number = seq->get<int>();
    // The topic a message arrives with is the concrete one it was published to.
    if (number >= 0 && number < messages_ &&
        delivery.topic != topic(published_topics[static_cast<std::size_t>(number) % 5])) {
      sub.problems.push_back("message " + std::to_string(number) + " came with topic " +
                             std::string(delivery.topic));
    }
    sub.received.push_back(number);
  }

  void publish_from(int first) {
    phase_ = "publishing";
    for (int seq = first; seq < messages_; ++seq) {
      const auto relative = published_topics[static_cast<std::size_t>(seq) % 5];
      const json body{{"seq", seq}, {"symbol", relative}, {"price_cents", 10'000 + 7 * seq}};
      const auto ec = publisher_.publish(topic(relative), body.dump());
      if (ec == client::errc::outbound_full) {
        // publish() never waits: resume from this message once there is room again.
        publisher_.async_wait_writable([this, seq](const client::error_code& wait_ec) {
          if (finished_) return;
          if (wait_ec) {
            fail("waiting to publish failed: " + wait_ec.message());
            return;
          }
          publish_from(seq);
        });
        return;
      }
      if (ec) {
        fail("cannot publish message " + std::to_string(seq) + ": " + ec.message());
        return;
      }
    }
    std::cout << "published " << messages_ << " messages on " << std::size(published_topics)
              << " topics\n";

    // The pong proves the broker has routed every message above into each subscriber's
    // outbound queue (PROTOCOL.md section 2)...
    phase_ = "flushing the publisher";
    publisher_.async_flush(timeout_, [this](const client::error_code& ec) {
      if (finished_) return;
      if (ec) {
        fail("flushing the publisher failed: " + ec.message());
        return;
      }
      flush_subscribers();
    });
  }

  void flush_subscribers() {
    // ...and a subscriber's own pong comes behind those messages on its connection: once
    // it is back, the subscriber has received everything it will ever get. No sleeps, no
    // polling, and a missing or extra message is certain, not a guess.
    phase_ = "flushing the subscribers";
    pending_ = subscribers_.size();
    for (auto& sub : subscribers_) {
      sub->connection.async_flush(timeout_, [this, name = sub->name](const client::error_code& ec) {
        if (finished_) return;
        if (ec) {
          fail("flushing " + name + " failed: " + ec.message());
          return;
        }
        if (completes_phase()) verify();
      });
    }
  }

  void verify() {
    std::size_t deliveries = 0;
    int bad = 0;
    for (const auto& sub : subscribers_) {
      deliveries += sub->received.size();
      const bool same = sub->received == sub->expected && sub->problems.empty();
      std::cout << "  " << std::left << std::setw(9) << sub->name << " " << std::setw(13)
                << sub->short_pattern << " " << sub->received.size() << "/" << sub->expected.size()
                << (same ? " in order" : " MISMATCH") << "\n";
      if (same) continue;
      ++bad;
      for (const auto& problem : sub->problems)
        std::cerr << sub->name << ": " << problem << "\n";
      const auto& got = sub->received;
      const auto& want = sub->expected;
      std::size_t at = 0;
      while (at < got.size() && at < want.size() && got[at] == want[at])
        ++at;
      if (at < got.size() || at < want.size()) {
        std::cerr << sub->name << ": first difference at position " << at << ": expected "
                  << (at < want.size() ? std::to_string(want[at]) : "nothing") << ", got "
                  << (at < got.size() ? std::to_string(got[at]) : "nothing") << "\n";
      }
    }
    if (bad != 0) {
      std::cerr << "error: " << bad << " subscriber(s) did not get exactly their messages\n";
      finish(tidings::examples::exit_failure);
      return;
    }
    std::cout << "every subscriber got every matching message in order (" << messages_
              << " published, " << deliveries << " delivered)\n";
    finish(tidings::examples::exit_ok);
  }

  void fail(std::string reason) {
    if (finished_) return;
    std::cerr << "error: " << reason << "\n";
    finish(tidings::examples::exit_failure);
  }

  // Closing every connection and the deadline leaves the io_context without work, so
  // run() returns.
  void finish(int code) {
    if (finished_) return;
    finished_ = true;
    exit_code_ = code;
    deadline_.cancel();
    for (auto& sub : subscribers_) {
      sub->subscription.detach();  // close() ends it with the connection
      sub->connection.close();
    }
    publisher_.close();
  }

  client::options base_;
  std::string prefix_;
  int messages_;
  std::chrono::seconds timeout_;
  client::connection publisher_;
  std::vector<std::unique_ptr<subscriber>> subscribers_;
  asio::steady_timer deadline_;
  std::string phase_;
  std::size_t pending_ = 0;  // completions still expected in the current phase
  bool finished_ = false;
  int exit_code_ = tidings::examples::exit_failure;
};

}  // namespace

int main(int argc, char** argv) {
  int messages = 100;
  int timeout_s = 30;
  client::options settings;
  if (const auto stop = tidings::examples::parse_command_line(
          argc, argv,
          "One publisher, five subscribers on exact and wildcard patterns; each must get "
          "exactly the messages that match, in the order they were published.",
          {{.name = "--messages",
            .help = "messages to publish",
            .number = &messages,
            .min = 1,
            .max = 1000000},
           {.name = "--timeout",
            .help = "seconds for the whole run",
            .number = &timeout_s,
            .min = 1,
            .max = 3600}},
          settings)) {
    return *stop;
  }

  // Progress shows at once, even through a pipe (a test or `| tee` watching for it).
  std::cout << std::unitbuf;
  // One thread runs every connection (a connection is not thread-safe), so the handlers
  // above never run concurrently and need no locks.
  asio::io_context io;
  fan_out run(io, settings, messages, std::chrono::seconds(timeout_s));
  run.start();
  io.run();
  return run.exit_code();
}
