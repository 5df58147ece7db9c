// tidings bench: throughput and latency, in the manner of `nats bench`.
//
// Every client is one connection with its own io_context and thread, so that clients
// compete as separate programs would. Subscribers (or responders) are confirmed
// subscribed before any publisher starts; publishers start together.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "tidings/protocol/topic.hpp"

namespace tidings::cli {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
          .count());
}

// Responders of one run share the work instead of all answering every request.
constexpr std::string_view responder_queue = "tidings-bench";
// Publishers yield to their event loop this often, so that writes go out while they
// publish instead of all at the end.
constexpr std::uint64_t yield_every = 128;
// A publisher's buffer before outbound_full: small enough that back-pressure, not
// memory, paces a publisher that outruns the server.
constexpr std::size_t publisher_outbound_bytes = std::size_t{4} << 20;

// What the client threads report to the main thread.
struct shared_state {
  std::mutex mutex;
  std::condition_variable changed;
  std::optional<failure> problem;
  std::size_t ready = 0;  // subscribed subscribers, then connected publishers too
  std::size_t publishers_done = 0;
  std::size_t subscribers_done = 0;

  void fail(const failure& why) {
    const std::lock_guard lock(mutex);
    if (!problem) problem = why;
    changed.notify_all();
  }
  void bump(std::size_t& counter) {
    const std::lock_guard lock(mutex);
    ++counter;
    changed.notify_all();
  }
};

// One client. Fields other than the atomic `count` belong to the client's thread until
// it is joined.
struct endpoint {
  std::string role;  // "publisher" or "subscriber", for messages
  std::size_t index = 0;
  asio::io_context io;
  std::optional<client::connection> connection;
  std::thread thread;
  std::uint64_t expected = 0;
  std::atomic<std::uint64_t> count{0};
  latency_histogram latency;
  std::uint64_t end_ns = 0;   // publisher: flushed; subscriber: last expected message
  std::uint64_t last_ns = 0;  // last message seen (subscriber), for a run cut short

  void start(std::function<asio::awaitable<void>()> body, shared_state& state) {
    asio::co_spawn(io, std::move(body), [&state](const std::exception_ptr& e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& what) {
        state.fail(failure(exit_error, what.what()));
      }
    });
    if (!thread.joinable()) thread = std::thread([this] { io.run(); });
  }

  // Safe from any thread; the connection is closed on its own thread.
  void stop() {
    asio::post(io, [this] {
      if (connection) connection->close();
      io.stop();
    });
  }
};

struct bench_settings {
  std::string topic;
  std::size_t publishers = 1;
  std::size_t subscribers = 0;
  std::uint64_t messages = 100'000;
  std::size_t size = 128;
  bool request = false;
  std::chrono::milliseconds timeout{};
  bool progress = true;
};

class bench_run {
 public:
  bench_run(bench_settings settings, connection_flags::target target)
      : settings_(std::move(settings)), target_(std::move(target)) {}

  ~bench_run() {
    for (auto& e : endpoints_)
      e->stop();
    for (auto& e : endpoints_) {
      if (e->thread.joinable()) e->thread.join();
    }
  }
  bench_run(const bench_run&) = delete;
  bench_run& operator=(const bench_run&) = delete;

  int run() {
    print_banner();
    for (std::size_t i = 0; i < settings_.subscribers; ++i) {
      auto& e = add_endpoint("subscriber", i);
      e.expected = settings_.messages;
      e.start([this, &e] { return subscriber_main(e); }, state_);
    }
    wait_ready(settings_.subscribers, "subscribing");

    const auto shares = split_evenly(settings_.messages, settings_.publishers);
    for (std::size_t i = 0; i < settings_.publishers; ++i) {
      auto& e = add_endpoint("publisher", i);
      e.expected = shares[i];
      e.start([this, &e] { return publisher_connect(e); }, state_);
    }
    wait_ready(settings_.subscribers + settings_.publishers, "connecting");

    start_ns_ = now_ns();
    for (auto* e : publishers_) {
      e->start([this, e] { return publisher_main(*e); }, state_);
    }
    const bool completed = wait_for_end();
    const auto stop_ns = now_ns();
    for (auto& e : endpoints_)
      e->stop();
    for (auto& e : endpoints_) {
      if (e->thread.joinable()) e->thread.join();
    }
    {
      const std::lock_guard lock(state_.mutex);
      if (state_.problem) throw *state_.problem;
    }
    report(stop_ns);
    if (!completed) {
      throw failure(exit_timeout, "no progress for " + format_nanos(timeout_ns()) +
                                      ": the run was cut short (see the missing counts above)");
    }
    return exit_ok;
  }

 private:
  endpoint& add_endpoint(const char* role, std::size_t index) {
    auto e = std::make_unique<endpoint>();
    e->role = role;
    e->index = index;
    auto options = target_.options;
    options.name = "tidings bench " + std::string(role) + " " + std::to_string(index + 1);
    if (e->role == "publisher") options.max_outbound_bytes = publisher_outbound_bytes;
    // A subscriber that falls behind is cut by the broker (slow_consumer, whose `err` the
    // full socket often cannot take): say so, rather than stall until the timeout with
    // only missing counts to show.
    options.on_closed = [this, client = e.get()](const client::error_code& reason) {
      if (reason) {
        state_.fail(client_failure(
            *client, "connection lost (a slow consumer is cut at the server's max_pending)",
            client::error{reason, {}}));
      }
    };
    e->connection.emplace(e->io.get_executor(), std::move(options));
    endpoints_.push_back(std::move(e));
    auto& added = *endpoints_.back();
    (added.role == "publisher" ? publishers_ : subscribers_).push_back(&added);
    return added;
  }

  std::uint64_t timeout_ns() const {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(settings_.timeout).count());
  }

  // A failure of client `e`, as one line.
  failure client_failure(const endpoint& e, const std::string& what, const client::error& result) {
    return failure(exit_code_for(result.code), e.role + " " + std::to_string(e.index + 1) + ": " +
                                                   what + " on " + target_.address + ": " +
                                                   describe(result.code, result.message));
  }

  asio::awaitable<bool> connect(endpoint& e) {
    const auto result = co_await await_status([&e](client::detail::status_completion done) {
      e.connection->start_connect(std::move(done));
    });
    if (result) {
      state_.fail(connect_failure(target_.address, result.code, result.message));
      co_return false;
    }
    co_return true;
  }

  asio::awaitable<void> subscriber_main(endpoint& e) {
    // Not `if (!co_await ...)`: g++ 12 miscompiles a co_await inside a condition.
    const bool connected = co_await connect(e);
    if (!connected) co_return;
    client::subscribe_options extra;
    client::message_handler handler;
    if (settings_.request) {
      extra.queue = responder_queue;
      handler = [this, &e](const client::message_view& m) { on_request(e, m); };
    } else {
      handler = [this, &e](const client::message_view& m) { on_message(e, m); };
    }
    const auto result =
        co_await await_status([this, &e, &extra, &handler](client::detail::status_completion done) {
          e.connection->subscribe_confirmed(settings_.topic, std::move(handler), extra,
                                            std::move(done));
        });
    if (result) {
      state_.fail(client_failure(e, "cannot subscribe to " + settings_.topic, result));
      co_return;
    }
    state_.bump(state_.ready);
  }

  void on_message(endpoint& e, const client::message_view& m) {
    const auto now = now_ns();
    if (const auto sent = read_bench_stamp(m.data); sent && now >= *sent) {
      e.latency.record(now - *sent);
    }
    const auto count = e.count.load(std::memory_order_relaxed) + 1;
    e.count.store(count, std::memory_order_relaxed);
    e.last_ns = now;
    if (count == e.expected) {
      e.end_ns = now;
      state_.bump(state_.subscribers_done);
    }
  }

  void on_request(endpoint& e, const client::message_view& m) {
    if (m.reply.empty()) return;
    if (const auto ec = e.connection->publish(m.reply, m.data)) {
      state_.fail(client_failure(e, "cannot answer a request", client::error{ec, {}}));
      return;
    }
    e.count.fetch_add(1, std::memory_order_relaxed);
    e.last_ns = now_ns();
  }

  asio::awaitable<void> publisher_connect(endpoint& e) {
    const bool connected = co_await connect(e);
    if (connected) state_.bump(state_.ready);
  }

  asio::awaitable<void> publisher_main(endpoint& e) {
    auto executor = co_await asio::this_coro::executor;
    std::string payload = make_bench_payload(settings_.size);
    auto& connection = *e.connection;
    for (std::uint64_t i = 0; i < e.expected; ++i) {
      if (settings_.request) {
        const auto sent = now_ns();
        client::error_code ec;
        co_await connection.async_request(settings_.topic, payload, settings_.timeout,
                                          asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          state_.fail(client_failure(e, "request to " + settings_.topic + " failed",
                                     client::error{ec, {}}));
          co_return;
        }
        e.latency.record(now_ns() - sent);
      } else {
        stamp_bench_payload(payload, now_ns());
        auto ec = connection.publish(settings_.topic, payload);
        while (ec == client::errc::outbound_full) {
          client::error_code waited;
          co_await connection.async_wait_writable(
              asio::redirect_error(asio::use_awaitable, waited));
          if (waited) {
            ec = waited;
            break;
          }
          // The time spent waiting is the publisher's, not the network's.
          stamp_bench_payload(payload, now_ns());
          ec = connection.publish(settings_.topic, payload);
        }
        if (ec) {
          state_.fail(
              client_failure(e, "cannot publish to " + settings_.topic, client::error{ec, {}}));
          co_return;
        }
        if (i % yield_every == yield_every - 1) {
          co_await asio::post(executor, asio::use_awaitable);
        }
      }
      e.count.store(i + 1, std::memory_order_relaxed);
    }
    // Done means the server has routed every message, as the subscribers will see.
    const auto flushed = co_await await_status([this, &e](client::detail::status_completion done) {
      e.connection->flush(settings_.timeout, std::move(done));
    });
    if (flushed) {
      state_.fail(client_failure(e, "flush failed", flushed));
      co_return;
    }
    e.end_ns = now_ns();
    state_.bump(state_.publishers_done);
  }

  void wait_ready(std::size_t wanted, const char* what) {
    std::unique_lock lock(state_.mutex);
    const auto limit = target_.options.connect_timeout + settings_.timeout;
    const bool ready = state_.changed.wait_for(
        lock, limit, [&] { return state_.problem || state_.ready >= wanted; });
    if (state_.problem) throw *state_.problem;
    if (!ready) {
      throw failure(
          exit_timeout,
          std::string(what) + " took longer than " +
              format_nanos(static_cast<std::uint64_t>(std::chrono::nanoseconds(limit).count())) +
              " (server " + target_.address + ")");
    }
  }

  // Deliveries and publishes so far, and how many the run needs.
  std::pair<std::uint64_t, std::uint64_t> progress() const {
    std::uint64_t done = 0;
    for (const auto* e : publishers_)
      done += e->count.load(std::memory_order_relaxed);
    std::uint64_t total = settings_.messages;
    if (!settings_.request) {
      for (const auto* e : subscribers_)
        done += e->count.load(std::memory_order_relaxed);
      total += settings_.messages * settings_.subscribers;
    }
    return {done, total};
  }

  // true when everything arrived; false when nothing moved for --timeout.
  bool wait_for_end() {
    const bool draw = settings_.progress && ::isatty(STDERR_FILENO) == 1;
    auto last_change = clock_type::now();
    std::uint64_t last_done = 0;
    bool completed = false;
    std::unique_lock lock(state_.mutex);
    for (;;) {
      if (state_.problem) break;
      const bool publishers_done = state_.publishers_done == settings_.publishers;
      const bool subscribers_done =
          settings_.request || state_.subscribers_done == settings_.subscribers;
      if (publishers_done && subscribers_done) {
        completed = true;
        break;
      }
      state_.changed.wait_for(lock, 100ms);
      const auto [done, total] = progress();
      const auto now = clock_type::now();
      if (done != last_done) {
        last_done = done;
        last_change = now;
      } else if (now - last_change >= settings_.timeout) {
        break;
      }
      if (draw) {
        lock.unlock();
        std::fprintf(stderr, "\r%s %s/%s", progress_bar(done, total, 40).c_str(),
                     format_count(done).c_str(), format_count(total).c_str());
        std::fflush(stderr);
        lock.lock();
      }
    }
    if (draw) std::fprintf(stderr, "\r%*s\r", 80, "");
    return completed;
  }

  void print_banner() const {
    std::printf("Starting %s benchmark on %s [msgs=%s, size=%s B, pubs=%zu, subs=%zu, server=%s]\n",
                settings_.request ? "request/reply" : "pub/sub", settings_.topic.c_str(),
                format_count(settings_.messages).c_str(), format_count(settings_.size).c_str(),
                settings_.publishers, settings_.subscribers, target_.address.c_str());
    std::fflush(stdout);
  }

  struct totals {
    std::uint64_t messages = 0;
    std::uint64_t end_ns = 0;
  };

  // One line per client and the group's aggregate; returns the group's totals.
  totals report_group(const char* title, const std::vector<endpoint*>& group,
                      std::uint64_t stop_ns) const {
    totals sum;
    std::vector<std::string> lines;
    for (const auto* e : group) {
      const auto count = e->count.load(std::memory_order_relaxed);
      auto end = e->end_ns != 0 ? e->end_ns : (e->last_ns != 0 ? e->last_ns : stop_ns);
      if (e->role == "subscriber" && settings_.request)
        end = e->last_ns != 0 ? e->last_ns : stop_ns;
      sum.messages += count;
      sum.end_ns = std::max(sum.end_ns, end);
      std::string line = "  [" + std::to_string(e->index + 1) + "] " + rate_text(count, end) +
                         " (" + format_count(count) + " msgs";
      if (!settings_.request && e->expected != 0 && count < e->expected) {
        line += ", " + format_count(e->expected - count) + " missing";
      }
      lines.push_back(line + ")");
    }
    std::printf(" %s: %s\n", title, rate_text(sum.messages, sum.end_ns).c_str());
    for (const auto& line : lines)
      std::printf("%s\n", line.c_str());
    return sum;
  }

  std::string rate_text(std::uint64_t messages, std::uint64_t end_ns) const {
    const auto elapsed = std::chrono::nanoseconds(
        static_cast<std::int64_t>(end_ns > start_ns_ ? end_ns - start_ns_ : 0));
    const auto rate = compute_throughput(messages, settings_.size, elapsed);
    char text[96];
    std::snprintf(text, sizeof text, "%s msgs/s ~ %.2f MB/s",
                  format_count(static_cast<std::uint64_t>(rate.messages_per_second)).c_str(),
                  rate.megabytes_per_second);
    return text;
  }

  void report(std::uint64_t stop_ns) const {
    std::printf("\n");
    if (settings_.request) {
      const auto requests = report_group("Requester stats", publishers_, stop_ns);
      if (!subscribers_.empty()) report_group("Responder stats", subscribers_, stop_ns);
      std::printf("Request/reply stats: %s\n",
                  rate_text(requests.messages, requests.end_ns).c_str());
    } else {
      const auto published = report_group("Pub stats", publishers_, stop_ns);
      if (!subscribers_.empty()) {
        const auto received = report_group("Sub stats", subscribers_, stop_ns);
        std::printf("Pub/Sub stats: %s\n", rate_text(published.messages + received.messages,
                                                     std::max(published.end_ns, received.end_ns))
                                               .c_str());
      }
    }
    latency_histogram latency;
    for (const auto& e : endpoints_) {
      if ((e->role == "publisher") == settings_.request) latency.merge(e->latency);
    }
    if (latency.count() > 0) {
      std::printf(
          "Latency (%s, %s samples): p50 %s | p90 %s | p99 %s | p99.9 %s | max %s\n",
          settings_.request ? "request round trip" : "publish to delivery",
          format_count(latency.count()).c_str(), format_nanos(latency.percentile(50)).c_str(),
          format_nanos(latency.percentile(90)).c_str(),
          format_nanos(latency.percentile(99)).c_str(),
          format_nanos(latency.percentile(99.9)).c_str(), format_nanos(latency.max()).c_str());
    } else if (!settings_.request && settings_.subscribers > 0 &&
               settings_.size < timestamp_digits) {
      std::printf("Latency: not measured (--size below %zu bytes carries no send time)\n",
                  timestamp_digits);
    }
    std::fflush(stdout);
  }

  bench_settings settings_;
  connection_flags::target target_;
  shared_state state_;
  std::vector<std::unique_ptr<endpoint>> endpoints_;
  std::vector<endpoint*> publishers_;
  std::vector<endpoint*> subscribers_;
  std::uint64_t start_ns_ = 0;
};

class bench_command final : public command {
 public:
  explicit bench_command(CLI::App& app) {
    subcommand_ = app.add_subcommand("bench", "Measure throughput and latency");
    details_ =
        "Like `nats bench`: --pub publishers send --msgs messages in total and each of --sub\n"
        "subscribers receives all of them; the report gives msgs/s and MB/s per client and\n"
        "in aggregate, and latency percentiles. With --request, publishers make requests\n"
        "one at a time and the subscribers answer them as one queue group.\n"
        "Examples:\n"
        "  tidings bench bench.test --pub 2 --sub 2 --msgs 1000000 --size 64\n"
        "  tidings bench bench.rpc --request --sub 2 --msgs 100000";
    auto& c = *subcommand_;
    c.add_option("TOPIC", settings_.topic, "Topic to benchmark on")->required();
    c.add_option("--pub", settings_.publishers, "Publishers (connections) [1]")
        ->option_text("N")
        ->check(CLI::Range(1, 1000));
    c.add_option("--sub", settings_.subscribers, "Subscribers (connections) [0]")
        ->option_text("N")
        ->check(CLI::Range(0, 1000));
    c.add_option("--msgs", settings_.messages, "Messages to publish in total [100000]")
        ->option_text("N")
        ->check(positive_integer());
    c.add_option("--size", size_text_,
                 "Payload: a JSON string of this many bytes [128];\nfrom 16 bytes on it carries "
                 "the send time")
        ->option_text("BYTES");
    c.add_flag("--request", settings_.request,
               "Request/reply mode: measure round trips (needs\n--sub or other responders)");
    c.add_option("--timeout", timeout_text_,
                 "Give up when nothing moves for this long; also\neach request's timeout [10s]")
        ->option_text("DURATION");
    c.add_flag("--no-progress", no_progress_,
               "No progress bar (shown on stderr only when it is\na terminal)");
    flags_.add_to(c);
  }

  int run() override {
    if (!protocol::is_valid_topic(settings_.topic)) {
      throw usage_error("TOPIC '" + settings_.topic + "' is not a valid concrete topic");
    }
    const auto size = parse_size(size_text_, "--size");
    // The frame must fit the server's default max_frame with room for the envelope.
    if (size > (std::uint64_t{1} << 20) - 1024) {
      throw usage_error("--size: " + size_text_ + " is too large (at most 1047552 bytes)");
    }
    settings_.size = static_cast<std::size_t>(size);
    settings_.timeout = parse_duration(timeout_text_, "--timeout");
    settings_.progress = !no_progress_;
    if (settings_.timeout.count() == 0) throw usage_error("--timeout: must be above 0");
    return bench_run(settings_, flags_.resolve("bench")).run();
  }

 private:
  bench_settings settings_;
  std::string size_text_ = "128";
  std::string timeout_text_ = "10s";
  bool no_progress_ = false;
  connection_flags flags_;
};

}  // namespace

std::unique_ptr<command> add_bench_command(CLI::App& app) {
  return std::make_unique<bench_command>(app);
}

}  // namespace tidings::cli
