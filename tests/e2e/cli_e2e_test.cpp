// End-to-end: the `tidings` command-line tool as processes against a real tidingsd.
// Synchronisation is by the tool's own signals only: the `subscribed: PATTERN` line on
// stderr and process exit. Every wait is bounded.

#include "daemon_process.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#ifndef TIDINGSD_PATH
#error "TIDINGSD_PATH must name the tidingsd binary"
#endif
#ifndef TIDINGS_CLI_PATH
#error "TIDINGS_CLI_PATH must name the tidings binary"
#endif

namespace {

using namespace std::chrono_literals;
using tidings::test::daemon_process;
using tidings::test::lines_of;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

constexpr auto run_timeout = 15s;         // a CLI run that should end by itself
constexpr auto subscribed_timeout = 10s;  // connect + confirmed subscribe

// The documented exit codes (docs/CLI.md).
constexpr int exit_ok = 0;
constexpr int exit_error = 1;
constexpr int exit_usage = 2;
constexpr int exit_timeout = 3;
constexpr int exit_no_responders = 4;

struct cli_result {
  int code = -1;
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{};
};

std::ostream& operator<<(std::ostream& os, const cli_result& r) {
  return os << "exit " << r.code << "\nstdout:\n" << r.out << "stderr:\n" << r.err;
}

class CliE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<daemon_process>(
        TIDINGSD_PATH,
        std::vector<std::string>{"--host", "127.0.0.1", "--port", "0", "--threads", "2"});
    daemon_->wait_ready();
    server_ = "127.0.0.1:" + std::to_string(daemon_->port());
  }

  // `args` plus --server for our daemon.
  std::vector<std::string> with_server(std::vector<std::string> args) const {
    args.push_back("--server");
    args.push_back(server_);
    return args;
  }

  // Runs the tool to its end.
  static cli_result run(std::vector<std::string> args, std::vector<std::string> env = {},
                        std::optional<std::string> input = std::nullopt) {
    const auto start = clock_type::now();
    daemon_process cli(TIDINGS_CLI_PATH, std::move(args), std::move(env), std::move(input));
    const auto status = cli.wait_exit(run_timeout);
    cli_result result;
    result.elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start);
    result.out = cli.out();
    result.err = cli.err();
    if (!status) throw std::runtime_error("tidings did not exit in time; stderr:\n" + cli.err());
    if (!status->exited)
      throw std::runtime_error("tidings died by signal " + std::to_string(status->signal));
    result.code = status->code;
    return result;
  }

  cli_result run_here(std::vector<std::string> args,
                      std::optional<std::string> input = std::nullopt) const {
    return run(with_server(std::move(args)), {}, std::move(input));
  }

  // Starts a long-running subcommand (sub, reply) and waits for its `subscribed:` line.
  std::unique_ptr<daemon_process> start_listening(std::vector<std::string> args) const {
    const std::string pattern = args.at(1);
    auto cli = std::make_unique<daemon_process>(TIDINGS_CLI_PATH, with_server(std::move(args)));
    const auto line = cli->wait_for_line("subscribed: ", subscribed_timeout);
    if (!line) {
      throw std::runtime_error("no `subscribed:` line; stderr:\n" + cli->err() + "stdout:\n" +
                               cli->out());
    }
    EXPECT_EQ(*line, "subscribed: " + pattern);
    return cli;
  }

  static int wait_code(daemon_process& cli) {
    const auto status = cli.wait_exit(run_timeout);
    if (!status) throw std::runtime_error("tidings did not exit in time; stderr:\n" + cli.err());
    if (!status->exited) return -status->signal;
    return status->code;
  }

  std::unique_ptr<daemon_process> daemon_;
  std::string server_;
};

// A local port where nothing listens: bound (so nobody else takes it) but not listening,
// so a connection attempt is refused.
class closed_port {
 public:
  closed_port() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
      throw std::runtime_error("cannot reserve a port");
    }
    port_ = ntohs(address.sin_port);
  }
  ~closed_port() { ::close(fd_); }
  closed_port(const closed_port&) = delete;
  closed_port& operator=(const closed_port&) = delete;
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_;
  std::uint16_t port_ = 0;
};

// --- Usage ---------------------------------------------------------------------------

TEST_F(CliE2E, HelpExitsZeroAndListsTheExitCodes) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--help"},
                                               {"pub", "--help"},
                                               {"sub", "--help"},
                                               {"req", "--help"},
                                               {"reply", "--help"},
                                               {"ping", "--help"},
                                               {"bench", "--help"}}) {
    const auto r = run(args);
    EXPECT_EQ(r.code, exit_ok) << args.front() << "\n" << r;
    EXPECT_NE(r.out.find("Exit codes: 0 ok, 1 error"), std::string::npos) << r;
    EXPECT_NE(r.out.find("Usage: tidings"), std::string::npos) << r;
  }
  const auto pub = run({"pub", "--help"});
  EXPECT_NE(pub.out.find("--server"), std::string::npos) << pub;
  EXPECT_NE(pub.out.find("--header"), std::string::npos) << pub;

  const auto version = run({"--version"});
  EXPECT_EQ(version.code, exit_ok);
  EXPECT_EQ(version.out, "tidings " TIDINGS_VERSION "\n");
}

TEST_F(CliE2E, BadUsageExitsTwoWithOneLine) {
  struct bad_case {
    std::vector<std::string> args;
    std::string expected;  // part of the single stderr line
  };
  const std::vector<bad_case> cases{
      {{"pub", "orders"}, "DATA is required"},
      {{"pub", "orders", "hello"}, "a JSON string needs quotes"},
      {{"pub", "orders", "{\"a\":"}, "DATA: it is not valid JSON"},
      {{"pub", "orders.*", "1"}, "not a valid concrete topic"},
      {{"pub", "orders", "1", "--header", "novalue"}, "is not NAME=VALUE"},
      {{"pub", "orders", "1", "--bogus"}, "--bogus"},
      {{"sub", "a.>.c"}, "not a valid pattern"},
      {{"req", "svc", "1", "--timeout", "5"}, "--timeout: '5' has no unit"},
      {{"ping", "--server", "host:notaport"}, "--server: 'host:notaport' is not HOST[:PORT]"},
      {{"bench", "t", "--size", "12XB"}, "--size"},
      {{"nonsense"}, "nonsense"},
  };
  for (const auto& c : cases) {
    const auto r = run(c.args);
    EXPECT_EQ(r.code, exit_usage) << c.args.front() << "\n" << r;
    const auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1U) << r;
    EXPECT_EQ(lines[0].rfind("tidings: ", 0), 0U) << r;
    EXPECT_NE(lines[0].find(c.expected), std::string::npos) << r;
    EXPECT_TRUE(r.out.empty()) << r;
  }

  // Without a subcommand there is nothing to do: the help goes to stderr, exit 2.
  const auto bare = run({});
  EXPECT_EQ(bare.code, exit_usage) << bare;
  EXPECT_NE(bare.err.find("Usage: tidings"), std::string::npos) << bare;
  EXPECT_TRUE(bare.out.empty()) << bare;
}

// --- ping ------------------------------------------------------------------------------

TEST_F(CliE2E, PingReportsTheServer) {
  const auto r = run_here({"ping"});
  ASSERT_EQ(r.code, exit_ok) << r;
  // `pong from tidingsd VERSION (client_id N) in D.DD ms`, checked piece by piece:
  // std::regex trips g++ 12's -Wmaybe-uninitialized in sanitizer builds.
  const std::string head = "pong from tidingsd " TIDINGS_VERSION " (client_id ";
  ASSERT_EQ(r.out.rfind(head, 0), 0U) << r;
  const auto close = r.out.find(") in ", head.size());
  ASSERT_NE(close, std::string::npos) << r;
  const auto id = r.out.substr(head.size(), close - head.size());
  EXPECT_FALSE(id.empty());
  EXPECT_EQ(id.find_first_not_of("0123456789"), std::string::npos) << r;
  const auto millis = r.out.substr(close + 5);
  ASSERT_GE(millis.size(), 8U) << r;
  EXPECT_EQ(millis.substr(millis.size() - 4), " ms\n") << r;
  const auto number = millis.substr(0, millis.size() - 4);
  const auto dot = number.find('.');
  ASSERT_NE(dot, std::string::npos) << r;
  EXPECT_EQ(number.size() - dot, 3U) << r;
  EXPECT_EQ(number.find_first_not_of("0123456789."), std::string::npos) << r;
  EXPECT_TRUE(r.err.empty()) << r;
}

TEST_F(CliE2E, PingAgainstAClosedPortFailsWithOneLine) {
  const closed_port closed;
  const auto r = run({"ping", "--server", closed.address(), "--timeout", "2s"});
  EXPECT_EQ(r.code, exit_error) << r;
  EXPECT_EQ(r.err, "tidings: cannot connect to " + closed.address() + ": Connection refused\n")
      << r;
  EXPECT_TRUE(r.out.empty()) << r;
}

TEST_F(CliE2E, TheServerComesFromTheEnvironmentUnlessTheFlagIsGiven) {
  const closed_port closed;
  const auto from_env = run({"ping"}, {"TIDINGS_SERVER=" + server_});
  EXPECT_EQ(from_env.code, exit_ok) << from_env;
  EXPECT_EQ(from_env.out.rfind("pong from tidingsd", 0), 0U) << from_env;

  // The flag wins over the environment.
  const auto flag_wins = run({"ping", "--server", server_}, {"TIDINGS_SERVER=" + closed.address()});
  EXPECT_EQ(flag_wins.code, exit_ok) << flag_wins;

  const auto env_closed = run({"ping"}, {"TIDINGS_SERVER=" + closed.address()});
  EXPECT_EQ(env_closed.code, exit_error) << env_closed;
  EXPECT_NE(env_closed.err.find("cannot connect to " + closed.address()), std::string::npos)
      << env_closed;

  const auto env_bad = run({"ping"}, {"TIDINGS_SERVER=::1:4700"});
  EXPECT_EQ(env_bad.code, exit_usage) << env_bad;
  EXPECT_NE(env_bad.err.find("TIDINGS_SERVER"), std::string::npos) << env_bad;
}

// --- pub and sub -----------------------------------------------------------------------

TEST_F(CliE2E, SubPrintsEachMessageAsOneJsonLine) {
  auto sub = start_listening({"sub", "orders.>", "--count", "2"});

  const auto first = run_here({"pub", "orders.created", R"({"order": 42, "total": 9.50})", "-H",
                               "source=shop", "--header", "trace=a=b", "--reply", "orders.ack"});
  ASSERT_EQ(first.code, exit_ok) << first;
  EXPECT_TRUE(first.out.empty() && first.err.empty()) << first;
  const auto second = run_here({"pub", "orders.shipped.eu", R"("ok")"});
  ASSERT_EQ(second.code, exit_ok) << second;

  ASSERT_EQ(wait_code(*sub), exit_ok) << sub->err();
  // data and headers are embedded as sent (spacing and number spelling kept).
  EXPECT_EQ(sub->out(),
            R"({"topic":"orders.created","data":{"order": 42, "total": 9.50},"reply":"orders.ack",)"
            R"("headers":{"source":"shop","trace":"a=b"}})"
            "\n"
            R"({"topic":"orders.shipped.eu","data":"ok"})"
            "\n");
  for (const auto& line : lines_of(sub->out())) {
    EXPECT_TRUE(json::accept(line)) << line;
  }
}

TEST_F(CliE2E, PubCountAndRawOutput) {
  auto sub = start_listening({"sub", "ticks", "--count", "5", "--raw"});
  const auto r = run_here({"pub", "ticks", "[1, 2]", "--count", "5", "--confirm"});
  ASSERT_EQ(r.code, exit_ok) << r;
  ASSERT_EQ(wait_code(*sub), exit_ok) << sub->err();
  std::string expected;
  for (int i = 0; i < 5; ++i)
    expected += "[1, 2]\n";
  EXPECT_EQ(sub->out(), expected);
}

TEST_F(CliE2E, PubReadsStdinLineByLine) {
  auto sub = start_listening({"sub", "events", "--count", "3", "--raw"});
  const auto r =
      run_here({"pub", "events", "-"}, std::string("1\n\n  \n{\"a\": [1, 2]}\r\n\"three\"\n"));
  ASSERT_EQ(r.code, exit_ok) << r;
  ASSERT_EQ(wait_code(*sub), exit_ok) << sub->err();
  EXPECT_EQ(sub->out(), "1\n{\"a\": [1, 2]}\n\"three\"\n");
}

TEST_F(CliE2E, PubStopsAtTheFirstInvalidStdinLineAfterPublishingThoseBefore) {
  auto sub = start_listening({"sub", "events", "--count", "1", "--raw"});
  const auto r = run_here({"pub", "events", "-"}, std::string("{\"ok\":1}\nnot json\n2\n"));
  EXPECT_EQ(r.code, exit_usage) << r;
  const auto lines = lines_of(r.err);
  ASSERT_EQ(lines.size(), 1U) << r;
  EXPECT_EQ(lines[0].rfind("tidings: stdin line 2: it is not valid JSON", 0), 0U) << r;
  ASSERT_EQ(wait_code(*sub), exit_ok) << sub->err();
  EXPECT_EQ(sub->out(), "{\"ok\":1}\n");
}

TEST_F(CliE2E, PubFailuresFromTheServer) {
  // A publish the server refuses: reported after the flush, exit 1.
  const auto reserved = run_here({"pub", "$SYS.x", "1"});
  EXPECT_EQ(reserved.code, exit_error) << reserved;
  EXPECT_NE(reserved.err.find("permission_denied"), std::string::npos) << reserved;
  EXPECT_EQ(lines_of(reserved.err).size(), 1U) << reserved;

  const auto confirmed = run_here({"pub", "$SYS.x", "1", "--confirm"});
  EXPECT_EQ(confirmed.code, exit_error) << confirmed;
  EXPECT_NE(confirmed.err.find("permission_denied"), std::string::npos) << confirmed;

  // A publish with a reply topic that reaches nobody.
  const auto nobody = run_here({"pub", "nobody.home", "1", "--reply", "back"});
  EXPECT_EQ(nobody.code, exit_no_responders) << nobody;
  EXPECT_NE(nobody.err.find("no responders for nobody.home"), std::string::npos) << nobody;
}

TEST_F(CliE2E, SignalsStopASubscriberCleanly) {
  auto term = start_listening({"sub", "quiet.>"});
  auto interrupt = start_listening({"sub", "quiet.*"});
  term->send_signal(SIGTERM);
  interrupt->send_signal(SIGINT);
  EXPECT_EQ(wait_code(*term), exit_ok) << term->err();
  EXPECT_EQ(wait_code(*interrupt), exit_ok) << interrupt->err();
  EXPECT_TRUE(term->out().empty());
}

// --- queue groups ----------------------------------------------------------------------

TEST_F(CliE2E, QueueGroupMembersShareTheMessages) {
  auto a = start_listening({"sub", "jobs", "--queue", "workers", "--raw"});
  auto b = start_listening({"sub", "jobs", "--queue", "workers", "--raw"});
  constexpr int count = 40;
  std::string input;
  for (int i = 0; i < count; ++i)
    input += std::to_string(i) + "\n";
  const auto r = run_here({"pub", "jobs", "-"}, input);
  ASSERT_EQ(r.code, exit_ok) << r;

  // pub's exit means every message is queued for its subscriber; a stopping subscriber
  // drains, so it prints everything that was on its way.
  a->send_signal(SIGTERM);
  b->send_signal(SIGINT);
  ASSERT_EQ(wait_code(*a), exit_ok) << a->err();
  ASSERT_EQ(wait_code(*b), exit_ok) << b->err();

  const auto got_a = lines_of(a->out());
  const auto got_b = lines_of(b->out());
  std::multiset<std::string> all(got_a.begin(), got_a.end());
  all.insert(got_b.begin(), got_b.end());
  std::multiset<std::string> expected;
  for (int i = 0; i < count; ++i)
    expected.insert(std::to_string(i));
  EXPECT_EQ(all, expected) << "a:\n" << a->out() << "b:\n" << b->out();
  // Equal members get equal shares: each gets some.
  EXPECT_FALSE(got_a.empty());
  EXPECT_FALSE(got_b.empty());
}

// --- req and reply ---------------------------------------------------------------------

TEST_F(CliE2E, RequestAndReplyRoundTrip) {
  auto echo = start_listening({"reply", "svc.echo", "--count", "1"});
  const auto r = run_here({"req", "svc.echo", R"({"q": 1})", "-H", "k=v"});
  ASSERT_EQ(r.code, exit_ok) << r;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 1U) << r;
  const auto reply = json::parse(lines[0]);
  EXPECT_EQ(reply["data"], json::parse(R"({"q": 1})"));
  EXPECT_EQ(reply["topic"].get<std::string>().rfind("_INBOX.", 0), 0U) << r;
  EXPECT_FALSE(reply.contains("reply"));
  EXPECT_FALSE(reply.contains("headers"));

  // The responder printed the request it answered (with its headers and reply topic).
  ASSERT_EQ(wait_code(*echo), exit_ok) << echo->err();
  const auto request = json::parse(echo->out());
  EXPECT_EQ(request["topic"], "svc.echo");
  EXPECT_EQ(request["data"], json::parse(R"({"q": 1})"));
  EXPECT_EQ(request["headers"], json::parse(R"({"k":"v"})"));
  EXPECT_EQ(request["reply"], reply["topic"]);

  auto fixed = start_listening({"reply", "svc.time", "--data", R"("12:00")", "--count", "1"});
  const auto raw = run_here({"req", "svc.time", "null", "--raw"});
  ASSERT_EQ(raw.code, exit_ok) << raw;
  EXPECT_EQ(raw.out, "\"12:00\"\n");
  EXPECT_EQ(wait_code(*fixed), exit_ok) << fixed->err();
}

TEST_F(CliE2E, RequestWithoutRespondersFailsAtOnce) {
  const auto r = run_here({"req", "nobody.listens", "1", "--timeout", "10s"});
  EXPECT_EQ(r.code, exit_no_responders) << r;
  EXPECT_EQ(r.err, "tidings: no responders for nobody.listens on " + server_ + "\n") << r;
  EXPECT_TRUE(r.out.empty()) << r;
  // Well under the timeout: the server says so at once.
  EXPECT_LT(r.elapsed, 5s);
}

TEST_F(CliE2E, RequestTimesOutWhenNobodyAnswers) {
  auto silent = start_listening({"sub", "slow.service"});
  const auto r = run_here({"req", "slow.service", "1", "--timeout", "300ms"});
  EXPECT_EQ(r.code, exit_timeout) << r;
  EXPECT_NE(r.err.find("no reply on slow.service within 300ms"), std::string::npos) << r;
  EXPECT_EQ(lines_of(r.err).size(), 1U) << r;
  EXPECT_GE(r.elapsed, 300ms);

  // The request did reach the subscriber, with a reply topic.
  silent->send_signal(SIGTERM);
  ASSERT_EQ(wait_code(*silent), exit_ok) << silent->err();
  const auto seen = json::parse(silent->out());
  EXPECT_EQ(seen["topic"], "slow.service");
  EXPECT_TRUE(seen.contains("reply"));
}

// --- bench -----------------------------------------------------------------------------

TEST_F(CliE2E, BenchSmallPubSubRun) {
  const auto r = run_here(
      {"bench", "bench.test", "--msgs", "2000", "--pub", "1", "--sub", "1", "--size", "64"});
  ASSERT_EQ(r.code, exit_ok) << r;
  EXPECT_NE(r.out.find("Pub stats: "), std::string::npos) << r;
  EXPECT_NE(r.out.find("Sub stats: "), std::string::npos) << r;
  EXPECT_NE(r.out.find("Pub/Sub stats: "), std::string::npos) << r;
  EXPECT_NE(r.out.find("msgs/s"), std::string::npos) << r;
  EXPECT_NE(r.out.find("(2,000 msgs)"), std::string::npos) << r;
  EXPECT_NE(r.out.find("Latency (publish to delivery, 2,000 samples): p50 "), std::string::npos)
      << r;
  EXPECT_EQ(r.out.find("missing"), std::string::npos) << r;
  // stderr is not a terminal here: no progress bar.
  EXPECT_TRUE(r.err.empty()) << r;
}

TEST_F(CliE2E, BenchSmallRequestRun) {
  const auto r =
      run_here({"bench", "bench.rpc", "--request", "--msgs", "300", "--pub", "2", "--sub", "2"});
  ASSERT_EQ(r.code, exit_ok) << r;
  EXPECT_NE(r.out.find("Request/reply stats: "), std::string::npos) << r;
  EXPECT_NE(r.out.find("Latency (request round trip, 300 samples): p50 "), std::string::npos) << r;

  const auto nobody = run_here({"bench", "bench.none", "--request", "--msgs", "10"});
  EXPECT_EQ(nobody.code, exit_no_responders) << nobody;
}

}  // namespace
