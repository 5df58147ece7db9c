// End-to-end: the tidingsd binary as a process, driven through its command line, its
// environment, signals and raw protocol frames.

#include "daemon_process.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "raw_client.hpp"

#ifndef TIDINGSD_PATH
#error "TIDINGSD_PATH must name the tidingsd binary"
#endif

namespace {

using namespace std::chrono_literals;
using tidings::test::daemon_process;
using tidings::test::json;
using tidings::test::raw_client;
using clock_type = std::chrono::steady_clock;

constexpr auto exit_timeout = 5s;  // a graceful stop with nothing stuck

// Every daemon listens on loopback, on a port of its choosing, with two event loops
// (so that publishers and subscribers can sit on different loops).
std::vector<std::string> base_args(std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--host", "127.0.0.1", "--port", "0", "--threads", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::unique_ptr<daemon_process> start_daemon(std::vector<std::string> args,
                                             std::vector<std::string> env = {}) {
  auto daemon = std::make_unique<daemon_process>(TIDINGSD_PATH, std::move(args), std::move(env));
  daemon->wait_ready();
  return daemon;
}

// A client that has read its `info`.
raw_client connect_client(std::uint16_t port) {
  raw_client client(port);
  EXPECT_EQ(client.read_info().value("op", ""), "info");
  return client;
}

void subscribe(raw_client& client, std::uint64_t sid, const std::string& pattern) {
  client.send_json({{"op", "sub"}, {"sid", sid}, {"topic", pattern}, {"id", sid}});
  const auto ok = client.recv_op("ok");
  ASSERT_EQ(ok["id"], sid);
}

std::uint16_t local_port(const raw_client& client) {
  sockaddr_in address{};
  socklen_t size = sizeof address;
  ::getsockname(client.fd(), reinterpret_cast<sockaddr*>(&address), &size);
  return ntohs(address.sin_port);
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    if (end == std::string::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::chrono::milliseconds elapsed_since(clock_type::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start);
}

// The most a TCP send buffer grows to (tcp_wmem's maximum; 4 MiB by default).
std::size_t kernel_send_buffer_max() {
  std::ifstream in("/proc/sys/net/ipv4/tcp_wmem");
  std::size_t low = 0;
  std::size_t initial = 0;
  std::size_t max = 0;
  if (in >> low >> initial >> max && max > 0) return max;
  return std::size_t{4} << 20;
}

// A temporary directory, removed with everything in it.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tidingsd-e2e-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// --- 1. Start, greeting, routing ------------------------------------------------------

TEST(TidingsdE2E, ServesClientsOnAnEphemeralPort) {
  auto daemon = start_daemon(base_args());
  const auto port = daemon->port();
  ASSERT_NE(port, 0);

  raw_client subscriber(port);
  const auto info = subscriber.read_info();
  EXPECT_EQ(info["server"], "tidingsd");
  EXPECT_EQ(info["version"], TIDINGS_VERSION);
  EXPECT_EQ(info["proto"], 1);
  EXPECT_EQ(info["max_frame"], 1048576);
  EXPECT_EQ(info["max_pending"], 64 * 1024 * 1024);
  EXPECT_EQ(info["write_deadline_ms"], 10000);
  EXPECT_EQ(info["auth_required"], false);
  EXPECT_EQ(info["ping_interval_ms"], 30000);
  ASSERT_TRUE(info["client_id"].is_number_integer());

  raw_client publisher(port);
  const auto publisher_info = publisher.read_info();
  ASSERT_TRUE(publisher_info["client_id"].is_number_integer());
  EXPECT_NE(publisher_info["client_id"], info["client_id"]);

  subscribe(subscriber, 1, "orders.*");
  subscribe(subscriber, 2, "orders.>");
  subscribe(subscriber, 3, "orders.created");

  // `data` travels byte for byte, spacing and number spelling included.
  const std::string data = R"({"order":42, "total":9.50})";
  publisher.send_frame(R"({"op":"pub","topic":"orders.created","data":)" + data + "}");
  publisher.send_json({{"op", "pub"}, {"topic", "orders.created.eu"}, {"data", "eu"}});
  publisher.send_json({{"op", "pub"}, {"topic", "orders"}, {"data", "nobody"}});
  publisher.send_json({{"op", "pub"}, {"topic", "other.created"}, {"data", "nobody"}});
  publisher.send_json({{"op", "pub"}, {"topic", "orders.x"}, {"data", 1}, {"id", "p1"}});
  EXPECT_EQ(publisher.recv_op("ok")["id"], "p1");
  EXPECT_TRUE(publisher.sync().empty());

  std::vector<std::string> raw_msgs;
  for (;;) {
    const auto body = subscriber.recv_frame();
    ASSERT_TRUE(body.has_value());
    const auto frame = json::parse(*body);
    if (frame["op"] == "msg") {
      raw_msgs.push_back(*body);
      if (raw_msgs.size() == 6) break;
      continue;
    }
    FAIL() << "unexpected frame " << *body;
  }
  std::multiset<std::pair<std::uint64_t, std::string>> got;
  for (const auto& body : raw_msgs) {
    const auto frame = json::parse(body);
    got.emplace(frame["sid"].get<std::uint64_t>(), frame["topic"].get<std::string>());
    if (frame["topic"] == "orders.created") {
      EXPECT_TRUE(contains(body, data)) << body;
    }
  }
  const std::multiset<std::pair<std::uint64_t, std::string>> expected{
      {1, "orders.created"},    {2, "orders.created"}, {3, "orders.created"},
      {2, "orders.created.eu"}, {1, "orders.x"},       {2, "orders.x"}};
  EXPECT_EQ(got, expected);
  EXPECT_TRUE(subscriber.sync().empty());

  // Ping without and with an id.
  subscriber.send_json({{"op", "ping"}});
  const auto pong = subscriber.recv();
  EXPECT_EQ(pong["op"], "pong");
  EXPECT_FALSE(pong.contains("id"));
  subscriber.send_json({{"op", "ping"}, {"id", "x7"}});
  const auto pong_id = subscriber.recv();
  EXPECT_EQ(pong_id["op"], "pong");
  EXPECT_EQ(pong_id["id"], "x7");

  daemon->send_signal(SIGTERM);
  const auto status = daemon->wait_exit(exit_timeout);
  ASSERT_TRUE(status.has_value()) << daemon->err();
  EXPECT_TRUE(status->exited && status->code == 0) << daemon->err();
}

// --- 2. Graceful stop -----------------------------------------------------------------

class GracefulStop : public ::testing::TestWithParam<int> {};

TEST_P(GracefulStop, FlushesQueuedMessagesThenShuttingDownThenCloses) {
  const int signal_number = GetParam();
  // The drain timeout is far above what the drain needs, so that a slow (sanitizer) build
  // never reaches it: the log's lack of "drain timeout" is what proves the drain finished.
  auto daemon = start_daemon(base_args({"--drain-timeout", "60s"}));
  const auto port = daemon->port();

  // The subscriber reads nothing until the signal, and more is published for it than
  // the kernel's socket buffers hold (the server's send buffer, up to tcp_wmem's maximum,
  // and the subscriber's receive buffer, which stays small while nothing is read), so
  // that part of it waits in the server's queue. (A tiny receive buffer would do that
  // with less data, but then loopback TCP takes seconds to deliver a few hundred KiB.)
  raw_client subscriber = connect_client(port);
  subscribe(subscriber, 1, "feed.>");
  raw_client publisher = connect_client(port);
  raw_client idle = connect_client(port);

  constexpr std::size_t message_size = 32 * 1024;
  constexpr std::size_t most = 40 << 20;  // well below max_pending (64 MiB)
  const std::size_t kernel_holds = kernel_send_buffer_max() + (4 << 20);
  const std::size_t total = std::clamp(2 * kernel_holds, std::size_t{12} << 20, most);
  const bool some_stays_queued = total > kernel_holds + (2 << 20);
  const int count = static_cast<int>(total / message_size);
  const std::string padding(message_size, 'p');
  for (int i = 0; i < count; ++i) {
    publisher.send_json(
        {{"op", "pub"}, {"topic", "feed.items"}, {"data", {{"seq", i}, {"pad", padding}}}});
  }
  // The pong proves every message was handed to the subscriber's queue (section 2).
  ASSERT_TRUE(publisher.sync().empty());

  daemon->send_signal(signal_number);

  // The listener is closed before the drain is announced.
  ASSERT_TRUE(daemon->wait_for_line("draining", exit_timeout)) << daemon->err();
  EXPECT_THROW(raw_client late(port), std::runtime_error);
  if (some_stays_queued) {
    // What waits in the server's queue holds the drain open until the subscriber reads.
    EXPECT_FALSE(daemon->wait_exit(200ms).has_value()) << daemon->err();
  }

  for (int i = 0; i < count; ++i) {
    const auto frame = subscriber.recv();
    ASSERT_EQ(frame["op"], "msg") << frame.dump().substr(0, 200);
    ASSERT_EQ(frame["data"]["seq"], i);
  }
  const auto err = subscriber.recv();
  EXPECT_EQ(err["op"], "err");
  EXPECT_EQ(err["code"], "shutting_down");
  std::vector<std::string> rest;
  EXPECT_TRUE(subscriber.wait_closed(exit_timeout, &rest));
  EXPECT_TRUE(rest.empty());

  for (auto* other : {&publisher, &idle}) {
    const auto other_err = other->recv();
    EXPECT_EQ(other_err["op"], "err");
    EXPECT_EQ(other_err["code"], "shutting_down");
    EXPECT_TRUE(other->wait_closed(exit_timeout));
  }

  const auto status = daemon->wait_exit(exit_timeout);
  ASSERT_TRUE(status.has_value()) << daemon->err();
  EXPECT_TRUE(status->exited) << "killed by signal " << status->signal;
  EXPECT_EQ(status->code, 0) << daemon->err();
  const std::string name = signal_number == SIGINT ? "SIGINT" : "SIGTERM";
  EXPECT_TRUE(contains(daemon->err(), "received " + name)) << daemon->err();
  EXPECT_TRUE(contains(daemon->err(), "draining 3 connections")) << daemon->err();
  EXPECT_TRUE(contains(daemon->err(), "stopped:")) << daemon->err();
  EXPECT_FALSE(contains(daemon->err(), "drain timeout")) << daemon->err();
}

INSTANTIATE_TEST_SUITE_P(Signals, GracefulStop, ::testing::Values(SIGTERM, SIGINT),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                           return std::string(param_info.param == SIGINT ? "SIGINT" : "SIGTERM");
                         });

// A subscriber that never reads, with far more queued for it than the kernel buffers
// hold: the drain cannot finish on its own.
struct stuck_subscriber {
  raw_client subscriber;
  raw_client publisher;
};

stuck_subscriber make_stuck_subscriber(std::uint16_t port) {
  stuck_subscriber stuck{connect_client(port), connect_client(port)};
  stuck.subscriber.set_receive_buffer(4096);
  subscribe(stuck.subscriber, 1, "bulk");
  const std::string payload(256 * 1024, 'b');
  for (int i = 0; i < 96; ++i) {  // 24 MiB, well below max_pending (64 MiB)
    stuck.publisher.send_json({{"op", "pub"}, {"topic", "bulk"}, {"data", payload}});
  }
  EXPECT_TRUE(stuck.publisher.sync(10s).empty());
  return stuck;
}

// --- 3. Drain timeout -----------------------------------------------------------------

TEST(TidingsdE2E, DrainTimeoutEndsAStuckDrain) {
  auto daemon = start_daemon(base_args({"--drain-timeout", "500ms"}));
  auto stuck = make_stuck_subscriber(daemon->port());

  const auto start = clock_type::now();
  daemon->send_signal(SIGTERM);
  const auto status = daemon->wait_exit(5s);
  const auto took = elapsed_since(start);
  ASSERT_TRUE(status.has_value()) << "still running 5s after SIGTERM:\n" << daemon->err();
  EXPECT_TRUE(status->exited) << "killed by signal " << status->signal;
  EXPECT_EQ(status->code, 0) << daemon->err();
  EXPECT_LT(took.count(), 3000);
  // The drain really was stuck, and the timeout ended it.
  EXPECT_TRUE(contains(daemon->err(), "drain timeout")) << daemon->err();
  EXPECT_TRUE(contains(daemon->err(), "stopped:")) << daemon->err();
}

// --- 4. A second signal ---------------------------------------------------------------

TEST(TidingsdE2E, SecondSignalExitsAtOnceDuringADrain) {
  auto daemon = start_daemon(base_args({"--drain-timeout", "30s"}));
  auto stuck = make_stuck_subscriber(daemon->port());

  daemon->send_signal(SIGTERM);
  // Two signals sent back to back could merge into one: wait until the first is handled.
  ASSERT_TRUE(daemon->wait_for_line("draining", exit_timeout)) << daemon->err();
  ASSERT_TRUE(daemon->running()) << daemon->err();
  const auto start = clock_type::now();
  daemon->send_signal(SIGTERM);
  const auto status = daemon->wait_exit(2s);
  ASSERT_TRUE(status.has_value()) << "still running 2s after the second SIGTERM:\n"
                                  << daemon->err();
  EXPECT_LT(elapsed_since(start).count(), 2000);
  // Exiting at once is not a clean stop: tidingsd exits 128 + SIGTERM; dying of the
  // signal would do as well.
  EXPECT_TRUE(!status->exited || status->code != 0) << "exited 0";
  EXPECT_TRUE(contains(daemon->err(), "second signal")) << daemon->err();
  EXPECT_FALSE(contains(daemon->err(), "stopped:")) << daemon->err();
  // Reaped: the process is gone.
  EXPECT_EQ(::kill(daemon->pid(), 0), -1);
}

// --- 5. Bad flags ---------------------------------------------------------------------

struct bad_flag_case {
  std::vector<std::string> args;
  std::string names;  // the option the message must name
};

void PrintTo(const bad_flag_case& value, std::ostream* out) {
  for (const auto& arg : value.args)
    *out << arg << ' ';
}

class BadFlag : public ::testing::TestWithParam<bad_flag_case> {};

TEST_P(BadFlag, ExitsTwoWithOneLineNamingTheOption) {
  const auto& param = GetParam();
  daemon_process daemon(TIDINGSD_PATH, base_args(param.args));
  const auto start = clock_type::now();
  const auto status = daemon.wait_exit(exit_timeout);
  ASSERT_TRUE(status.has_value()) << "still running";
  EXPECT_LT(elapsed_since(start).count(), 2000);
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 2) << daemon.err();
  EXPECT_EQ(daemon.out(), "");
  const auto lines = lines_of(daemon.err());
  ASSERT_EQ(lines.size(), 1U) << daemon.err();
  EXPECT_EQ(daemon.err().back(), '\n');
  EXPECT_TRUE(contains(lines.front(), param.names)) << lines.front();
  EXPECT_EQ(lines.front().rfind("tidingsd: ", 0), 0U) << lines.front();
  EXPECT_FALSE(contains(lines.front(), "ready")) << lines.front();
}

INSTANTIATE_TEST_SUITE_P(
    Flags, BadFlag,
    ::testing::Values(bad_flag_case{{"--port", "70000"}, "--port"},
                      bad_flag_case{{"--max-pending", "12XB"}, "--max-pending"},
                      bad_flag_case{{"--write-deadline", "10"}, "--write-deadline"},
                      bad_flag_case{{"--nope"}, "--nope"}, bad_flag_case{{"--nope=3"}, "--nope"},
                      bad_flag_case{{"--log-format", "xml"}, "--log-format"},
                      bad_flag_case{{"--drain-timeout"}, "--drain-timeout"}),
    [](const ::testing::TestParamInfo<bad_flag_case>& param_info) {
      std::string name;
      for (const char c : param_info.param.args[0] + "_" + std::to_string(param_info.index)) {
        if (std::isalnum(static_cast<unsigned char>(c)) != 0) name += c;
      }
      return name;
    });

TEST(TidingsdE2E, HelpPrintsUsageToStdoutAndExitsZero) {
  daemon_process daemon(TIDINGSD_PATH, {"--help"});
  const auto status = daemon.wait_exit(exit_timeout);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 0);
  EXPECT_TRUE(contains(daemon.out(), "Usage:")) << daemon.out();
  for (const auto* option : {"--port", "--max-frame", "--drain-timeout", "--config"}) {
    EXPECT_TRUE(contains(daemon.out(), option)) << option;
  }
  EXPECT_EQ(daemon.err(), "");
}

TEST(TidingsdE2E, VersionPrintsTheVersionAndExitsZero) {
  daemon_process daemon(TIDINGSD_PATH, {"--version"});
  const auto status = daemon.wait_exit(exit_timeout);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 0);
  EXPECT_EQ(daemon.out(), "tidingsd " TIDINGS_VERSION "\n");
  EXPECT_EQ(daemon.err(), "");
}

// --- 6. Port in use -------------------------------------------------------------------

TEST(TidingsdE2E, PortInUseExitsNonZeroNamingTheAddress) {
  auto first = start_daemon(base_args());
  const auto port = std::to_string(first->port());

  daemon_process second(TIDINGSD_PATH, {"--host", "127.0.0.1", "--port", port, "--threads", "1"});
  const auto status = second.wait_exit(exit_timeout);
  ASSERT_TRUE(status.has_value()) << "the second daemon is running:\n" << second.err();
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 1);
  EXPECT_FALSE(contains(second.err(), "ready:")) << second.err();
  const auto lines = second.err_lines();
  const auto found = std::find_if(lines.begin(), lines.end(), [&](const std::string& line) {
    return contains(line, "127.0.0.1:" + port) && contains(line, "in use");
  });
  EXPECT_NE(found, lines.end()) << second.err();

  // The first one is unharmed.
  raw_client client = connect_client(first->port());
  EXPECT_TRUE(client.sync().empty());
}

// --- 7. Configuration sources ---------------------------------------------------------

TEST(TidingsdE2E, ConfigFileThenEnvironmentThenFlags) {
  temp_dir dir;
  const auto file = dir.path() / "tidingsd.toml";
  {
    std::ofstream out(file);
    out << "# e2e\nmax-frame = \"4KiB\"\nserver-name = \"from-file\"\n";
  }
  const auto max_frame_of = [](daemon_process& daemon) {
    raw_client client(daemon.port());
    return client.read_info()["max_frame"].get<std::uint64_t>();
  };

  {
    auto daemon = start_daemon(base_args({"--config", file.string()}));
    raw_client client(daemon->port());
    const auto info = client.read_info();
    EXPECT_EQ(info["max_frame"], 4096);
    EXPECT_EQ(info["server"], "from-file");

    // A frame of exactly max_frame is taken.
    const std::string head = R"({"op":"pub","topic":"big","data":")";
    const std::string tail = "\"}";
    client.send_frame(head + std::string(4096 - head.size() - tail.size(), 'x') + tail);
    EXPECT_TRUE(client.sync().empty());
    // One byte more is frame_too_large, and the connection closes.
    client.send_frame(head + std::string(4097 - head.size() - tail.size(), 'x') + tail);
    const auto err = client.recv();
    EXPECT_EQ(err["op"], "err");
    EXPECT_EQ(err["code"], "frame_too_large");
    EXPECT_TRUE(client.wait_closed(3s));
  }
  {
    // The environment beats the file; the file still supplies what the environment lacks.
    auto daemon = start_daemon(base_args({"--config", file.string()}), {"TIDINGS_MAX_FRAME=8KiB"});
    EXPECT_EQ(max_frame_of(*daemon), 8192U);
    raw_client client(daemon->port());
    EXPECT_EQ(client.read_info()["server"], "from-file");
  }
  {
    // TIDINGS_CONFIG names the file too.
    auto daemon = start_daemon(base_args(), {"TIDINGS_CONFIG=" + file.string()});
    EXPECT_EQ(max_frame_of(*daemon), 4096U);
  }
  {
    // A flag beats both.
    auto daemon = start_daemon(base_args({"--config", file.string(), "--max-frame", "16KiB"}),
                               {"TIDINGS_MAX_FRAME=8KiB"});
    EXPECT_EQ(max_frame_of(*daemon), 16384U);
  }
  {
    // A bad value in the environment is reported like a bad flag, naming the variable.
    daemon_process daemon(TIDINGSD_PATH, base_args(), {"TIDINGS_MAX_FRAME=lots"});
    const auto status = daemon.wait_exit(exit_timeout);
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(status->code, 2);
    ASSERT_EQ(daemon.err_lines().size(), 1U) << daemon.err();
    EXPECT_TRUE(contains(daemon.err(), "TIDINGS_MAX_FRAME")) << daemon.err();
  }
}

// --- 8. JSON logs ---------------------------------------------------------------------

TEST(TidingsdE2E, JsonLogsOneObjectPerLineAndNothingPerMessage) {
  auto daemon = start_daemon(base_args({"--log-format", "json"}));
  const auto port = daemon->port();

  auto subscriber = std::make_unique<raw_client>(port);
  const auto subscriber_id = subscriber->read_info()["client_id"].get<std::uint64_t>();
  auto publisher = std::make_unique<raw_client>(port);
  const auto publisher_id = publisher->read_info()["client_id"].get<std::uint64_t>();
  subscribe(*subscriber, 1, "log.>");

  // The daemon logs a connection before it sends `info`: both lines are in the pipe.
  daemon->read_available();
  for (const auto& [id, client] :
       {std::pair{subscriber_id, subscriber.get()}, std::pair{publisher_id, publisher.get()}}) {
    const auto line = daemon->wait_for_line("client " + std::to_string(id) + " connected", 1s);
    ASSERT_TRUE(line.has_value()) << daemon->err();
    EXPECT_TRUE(contains(*line, "127.0.0.1:" + std::to_string(local_port(*client)))) << *line;
  }

  const auto before = daemon->err_lines().size();
  constexpr int count = 1000;
  for (int i = 0; i < count; ++i) {
    publisher->send_json({{"op", "pub"}, {"topic", "log.item"}, {"data", i}});
  }
  EXPECT_TRUE(publisher->sync().empty());
  const auto received = subscriber->sync(10s);
  EXPECT_EQ(received.size(), static_cast<std::size_t>(count));
  daemon->read_available();
  const auto after = daemon->err_lines().size();
  EXPECT_LT(after - before, 10U) << daemon->err();

  // Closing a connection is logged with its id and address.
  const auto subscriber_port = std::to_string(local_port(*subscriber));
  subscriber.reset();
  const auto closed = daemon->wait_for_line("client " + std::to_string(subscriber_id) + " (", 5s);
  ASSERT_TRUE(closed.has_value()) << daemon->err();
  EXPECT_TRUE(contains(*closed, "127.0.0.1:" + subscriber_port)) << *closed;
  EXPECT_TRUE(contains(*closed, "closed")) << *closed;
  publisher.reset();

  daemon->send_signal(SIGTERM);
  const auto status = daemon->wait_exit(exit_timeout);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->code, 0) << daemon->err();
  EXPECT_EQ(daemon->out(), "");

  ASSERT_FALSE(daemon->err().empty());
  EXPECT_EQ(daemon->err().back(), '\n');
  bool saw_ready = false;
  for (const auto& line : daemon->err_lines()) {
    json entry;
    ASSERT_NO_THROW(entry = json::parse(line)) << line;
    ASSERT_TRUE(entry.is_object()) << line;
    ASSERT_TRUE(entry.contains("time") && entry["time"].is_string()) << line;
    ASSERT_TRUE(entry.contains("level") && entry["level"].is_string()) << line;
    ASSERT_TRUE(entry.contains("msg") && entry["msg"].is_string()) << line;
    if (contains(entry["msg"].get<std::string>(), "ready: listening on 127.0.0.1:")) {
      saw_ready = true;
      EXPECT_EQ(entry["level"], "info");
    }
  }
  EXPECT_TRUE(saw_ready);
}

// --- 9. Start-up lines ----------------------------------------------------------------

TEST(TidingsdE2E, LogsEffectiveSettingsThenReady) {
  auto daemon = start_daemon(base_args({"--max-pending", "16MiB", "--drain-timeout", "750ms"}),
                             {"TIDINGS_PING_INTERVAL=45s"});
  const auto lines = daemon->err_lines();
  const auto settings = std::find_if(lines.begin(), lines.end(), [](const std::string& line) {
    return contains(line, "starting:");
  });
  const auto ready = std::find_if(lines.begin(), lines.end(), [](const std::string& line) {
    return contains(line, "ready: listening on 127.0.0.1:");
  });
  ASSERT_NE(settings, lines.end()) << daemon->err();
  ASSERT_NE(ready, lines.end()) << daemon->err();
  EXPECT_LT(settings - lines.begin(), ready - lines.begin());
  EXPECT_TRUE(contains(*ready, ":" + std::to_string(daemon->port()))) << *ready;
  for (const auto* pair :
       {"host=127.0.0.1", "port=0", "threads=2", "max-frame=1MiB", "max-pending=16MiB",
        "drain-timeout=750ms", "ping-interval=45s", "write-deadline=10s", "log-format=text"}) {
    EXPECT_TRUE(contains(*settings, pair)) << pair << " missing from: " << *settings;
  }
  EXPECT_TRUE(contains(*settings, TIDINGS_VERSION)) << *settings;

  raw_client client = connect_client(daemon->port());
  EXPECT_TRUE(client.sync().empty());
  daemon->send_signal(SIGINT);
  const auto status = daemon->wait_exit(exit_timeout);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->code, 0) << daemon->err();
}

TEST(ReadyLine, ParsesThePortFromTextAndJsonLines) {
  using tidings::test::parse_ready_port;
  EXPECT_EQ(parse_ready_port("2026-01-01T00:00:00.000+00:00 info  ready: listening on "
                             "127.0.0.1:4700"),
            4700);
  EXPECT_EQ(parse_ready_port(R"({"time":"x","level":"info","msg":"ready: listening on [::1]:81"})"),
            81);
  EXPECT_EQ(parse_ready_port("ready: listening on 127.0.0.1:"), std::nullopt);
  EXPECT_EQ(parse_ready_port("starting"), std::nullopt);
}

}  // namespace
