// End-to-end: each example (examples/) as a process against a real tidingsd, checked by
// its exit code and the summary it prints; and each one's failure path.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
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

#include "daemon_process.hpp"

#ifndef TIDINGSD_PATH
#error "TIDINGSD_PATH must name the tidingsd binary"
#endif
#if !defined(WORK_QUEUE_PATH) || !defined(FAN_OUT_PATH) || !defined(EVENT_SERVICE_PATH)
#error "WORK_QUEUE_PATH, FAN_OUT_PATH and EVENT_SERVICE_PATH must name the examples"
#endif

namespace {

using namespace std::chrono_literals;
using tidings::test::daemon_process;
using tidings::test::lines_of;
using clock_type = std::chrono::steady_clock;

// Generous: an example takes well under a second here, but sanitizer builds on a busy
// machine are many times slower.
constexpr auto run_timeout = 60s;

std::unique_ptr<daemon_process> start_daemon() {
  auto daemon = std::make_unique<daemon_process>(
      TIDINGSD_PATH,
      std::vector<std::string>{"--host", "127.0.0.1", "--port", "0", "--threads", "2"});
  daemon->wait_ready();
  return daemon;
}

std::string server_of(const daemon_process& daemon) {
  return "127.0.0.1:" + std::to_string(daemon.port());
}

struct example_run {
  daemon_process::exit_status status;
  std::string out;
  std::string err;
  std::chrono::milliseconds took{};
};

std::ostream& operator<<(std::ostream& os, const example_run& run) {
  return os << "exited=" << run.status.exited << " code=" << run.status.code
            << " signal=" << run.status.signal << "\nstdout:\n"
            << run.out << "stderr:\n"
            << run.err;
}

// Runs an example to its end; nullopt (after recording a failure with its output so far)
// when it is still running at the deadline. The daemon_process destructor kills it then.
std::optional<example_run> run_example(const std::string& path, std::vector<std::string> args,
                                       std::vector<std::string> env = {}) {
  const auto start = clock_type::now();
  daemon_process example(path, std::move(args), std::move(env));
  const auto status = example.wait_exit(run_timeout);
  if (!status) {
    example.read_available();
    ADD_FAILURE() << path << " still running after " << run_timeout.count() << "s\nstdout:\n"
                  << example.out() << "stderr:\n"
                  << example.err();
    return std::nullopt;
  }
  return example_run{
      *status, example.out(), example.err(),
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start)};
}

bool succeeded(const example_run& run) {
  return run.status.exited && run.status.code == 0;
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// A loopback port where nothing listens: the socket is bound (so no one else gets the
// port while the test runs) but never listens, so a connect is refused at once.
class closed_port {
 public:
  closed_port() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
      ::close(fd_);
      throw std::runtime_error("bind failed");
    }
    port_ = ntohs(address.sin_port);
  }
  ~closed_port() { ::close(fd_); }
  closed_port(const closed_port&) = delete;
  closed_port& operator=(const closed_port&) = delete;
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// --- work_queue -----------------------------------------------------------------------

// The whole of `text` as a non-negative integer, if it is one.
std::optional<int> number_in(std::string_view text) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

// The `worker-N: K jobs` lines, as N -> K. (Parsed by hand: std::regex trips g++ 12's
// -Wmaybe-uninitialized in sanitizer builds.)
std::vector<std::pair<int, int>> worker_lines(const std::string& out) {
  constexpr std::string_view head = "worker-";
  constexpr std::string_view tail = " jobs";
  std::vector<std::pair<int, int>> workers;
  for (const std::string_view line : lines_of(out)) {
    const auto colon = line.find(": ");
    if (line.rfind(head, 0) != 0 || colon == std::string_view::npos || line.size() < tail.size() ||
        line.substr(line.size() - tail.size()) != tail) {
      continue;
    }
    const auto number = number_in(line.substr(head.size(), colon - head.size()));
    const auto jobs = number_in(line.substr(colon + 2, line.size() - tail.size() - (colon + 2)));
    if (number && jobs) workers.emplace_back(*number, *jobs);
  }
  return workers;
}

TEST(ExamplesE2E, WorkQueueDoesEveryJobExactlyOnce) {
  auto daemon = start_daemon();
  const auto run = run_example(WORK_QUEUE_PATH,
                               {"--server", server_of(*daemon), "--jobs", "100", "--workers", "3"});
  ASSERT_TRUE(run);
  ASSERT_TRUE(succeeded(*run)) << *run;
  EXPECT_TRUE(contains(run->out, "3 workers subscribed")) << *run;
  EXPECT_TRUE(contains(run->out, "all 100 jobs done exactly once")) << *run;

  // One summary line per worker, and the shares add up to every job.
  const auto workers = worker_lines(run->out);
  ASSERT_EQ(workers.size(), 3u) << *run;
  int total = 0;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    EXPECT_EQ(workers[i].first, static_cast<int>(i) + 1);
    total += workers[i].second;
  }
  EXPECT_EQ(total, 100) << *run;
  EXPECT_TRUE(run->err.empty()) << *run;
}

TEST(ExamplesE2E, WorkQueueScalesToManyJobsAndWorkers) {
  auto daemon = start_daemon();
  const auto run = run_example(WORK_QUEUE_PATH, {"--server", server_of(*daemon), "--jobs", "20000",
                                                 "--workers", "8", "--work-ms", "0"});
  ASSERT_TRUE(run);
  ASSERT_TRUE(succeeded(*run)) << *run;
  EXPECT_TRUE(contains(run->out, "all 20000 jobs done exactly once")) << *run;
  const auto workers = worker_lines(run->out);
  ASSERT_EQ(workers.size(), 8u) << *run;
  int total = 0;
  for (const auto& [number, jobs] : workers) {
    // Equal members get equal shares (PROTOCOL.md section 6); none is starved.
    EXPECT_GT(jobs, 0) << "worker-" << number << "\n" << *run;
    total += jobs;
  }
  EXPECT_EQ(total, 20000);
}

TEST(ExamplesE2E, WorkQueueFailsWhenTheBrokerStopsMidRun) {
  auto daemon = start_daemon();
  // Slow jobs keep it running long enough to stop the broker under it.
  daemon_process example(WORK_QUEUE_PATH, {"--server", server_of(*daemon), "--jobs", "1000",
                                           "--workers", "2", "--work-ms", "20"});
  const auto deadline = clock_type::now() + 20s;
  while (!contains(example.out(), "published 1000 jobs") && example.running() &&
         clock_type::now() < deadline) {
    example.wait_exit(10ms);  // reads its output meanwhile
  }
  ASSERT_TRUE(contains(example.out(), "published 1000 jobs")) << "stdout:\n"
                                                              << example.out() << "stderr:\n"
                                                              << example.err();
  daemon->send_signal(SIGTERM);

  const auto status = example.wait_exit(run_timeout);
  ASSERT_TRUE(status) << "still running\nstdout:\n"
                      << example.out() << "stderr:\n"
                      << example.err();
  EXPECT_TRUE(status->exited && status->code == 1) << "stdout:\n"
                                                   << example.out() << "stderr:\n"
                                                   << example.err();
  // The broker's goodbye (err shutting_down) or the lost connection, whichever the
  // example noticed first, is named.
  EXPECT_TRUE(contains(example.err(), "shutting_down") ||
              contains(example.err(), "lost its connection"))
      << example.err();
  EXPECT_FALSE(contains(example.out(), "exactly once")) << example.out();
}

// --- fan_out ----------------------------------------------------------------------------

TEST(ExamplesE2E, FanOutDeliversEveryMatchingMessageInOrder) {
  auto daemon = start_daemon();
  // The server from the environment this time, as a user's shell would set it.
  const auto run =
      run_example(FAN_OUT_PATH, {"--messages", "100"}, {"TIDINGS_SERVER=" + server_of(*daemon)});
  ASSERT_TRUE(run);
  ASSERT_TRUE(succeeded(*run)) << *run;
  EXPECT_TRUE(contains(run->out, "via " + server_of(*daemon))) << *run;
  // 100 messages over 5 topics: prices.eu.fr and prices.eu.de get 20 each, prices.> also
  // sees prices.us.nyse and prices.eu.fr.close, and quotes.eu.fr reaches nobody.
  for (const auto* line :
       {"fr-desk   prices.eu.fr  20/20 in order", "eu-desk   prices.eu.*   40/40 in order",
        "fr-watch  prices.*.fr   20/20 in order", "audit     prices.>      80/80 in order",
        "archive   prices.>      80/80 in order",
        "every subscriber got every matching message in order (100 "
        "published, 240 delivered)"}) {
    EXPECT_TRUE(contains(run->out, line)) << line << "\n" << *run;
  }
  EXPECT_TRUE(run->err.empty()) << *run;
}

TEST(ExamplesE2E, FanOutWithManyMessages) {
  auto daemon = start_daemon();
  const auto run =
      run_example(FAN_OUT_PATH, {"--server", server_of(*daemon), "--messages", "50000"});
  ASSERT_TRUE(run);
  ASSERT_TRUE(succeeded(*run)) << *run;
  EXPECT_TRUE(contains(run->out, "audit     prices.>      40000/40000 in order")) << *run;
  EXPECT_TRUE(contains(run->out, "(50000 published, 120000 delivered)")) << *run;
}

// --- event_service ----------------------------------------------------------------------

TEST(ExamplesE2E, EventServiceShipsEveryOrder) {
  auto daemon = start_daemon();
  const auto run =
      run_example(EVENT_SERVICE_PATH, {"--server", server_of(*daemon), "--orders", "20"});
  ASSERT_TRUE(run);
  ASSERT_TRUE(succeeded(*run)) << *run;
  EXPECT_TRUE(contains(run->out, "services subscribed: inventory, billing, shipping, pricing"))
      << *run;
  EXPECT_TRUE(contains(run->out, "all 20 orders shipped, 357.75 billed")) << *run;
  // Every order went through every stage once.
  for (const auto* stage :
       {"inventory: reserved ", "billing:   charged ", "shipping:  shipped order "}) {
    std::multiset<int> orders;
    for (const std::string_view line : lines_of(run->out)) {
      const auto at = line.rfind("order ");
      if (line.rfind(stage, 0) != 0 || at == std::string_view::npos) continue;
      if (const auto order = number_in(line.substr(at + 6))) orders.insert(*order);
    }
    std::multiset<int> expected;
    for (int order = 0; order < 20; ++order)
      expected.insert(order);
    EXPECT_EQ(orders, expected) << stage << "\n" << *run;
  }
  EXPECT_TRUE(run->err.empty()) << *run;
}

TEST(ExamplesE2E, EventServiceWithoutPricingFailsFastWithNoResponders) {
  auto daemon = start_daemon();
  const auto run = run_example(
      EVENT_SERVICE_PATH, {"--server", server_of(*daemon), "--orders", "5", "--without-pricing"});
  ASSERT_TRUE(run);
  EXPECT_TRUE(run->status.exited && run->status.code == 1) << *run;
  EXPECT_TRUE(contains(run->err, "billing: price lookup for order")) << *run;
  EXPECT_TRUE(contains(run->err, "no_responders")) << *run;
  EXPECT_FALSE(contains(run->out, "orders shipped")) << *run;
  // The broker's no_responders, not the request's 5 s timeout, ended it.
  EXPECT_LT(run->took, 4s) << *run;
}

// --- Every example: a broker that is not there, and a bad command line ------------------

struct example_case {
  const char* name;
  const char* path;
};

// Names the case in test output instead of dumping its bytes.
void PrintTo(const example_case& example, std::ostream* os) {
  *os << example.name;
}

class EveryExample : public ::testing::TestWithParam<example_case> {};

TEST_P(EveryExample, ExitsNonZeroWhenNoBrokerListens) {
  const closed_port nowhere;
  const auto run = run_example(GetParam().path, {"--server", nowhere.server()});
  ASSERT_TRUE(run);
  EXPECT_TRUE(run->status.exited && run->status.code == 1) << *run;
  EXPECT_TRUE(contains(run->err, "cannot connect to " + nowhere.server())) << *run;
  EXPECT_TRUE(contains(run->err, "refused")) << *run;
}

TEST_P(EveryExample, RejectsABadCommandLineWithUsage) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--server", "127.0.0.1:notaport"},
        std::vector<std::string>{"--no-such-option"}, std::vector<std::string>{"--timeout", "0"}}) {
    const auto run = run_example(GetParam().path, args);
    ASSERT_TRUE(run);
    EXPECT_TRUE(run->status.exited && run->status.code == 2) << args[0] << "\n" << *run;
    EXPECT_TRUE(contains(run->err, "usage: ")) << *run;
  }
  const auto help = run_example(GetParam().path, {"--help"});
  ASSERT_TRUE(help);
  EXPECT_TRUE(succeeded(*help)) << *help;
  EXPECT_TRUE(contains(help->out, "--server HOST:PORT")) << *help;
}

INSTANTIATE_TEST_SUITE_P(ExamplesE2E, EveryExample,
                         ::testing::Values(example_case{"work_queue", WORK_QUEUE_PATH},
                                           example_case{"fan_out", FAN_OUT_PATH},
                                           example_case{"event_service", EVENT_SERVICE_PATH}),
                         [](const auto& test) { return std::string(test.param.name); });

}  // namespace
