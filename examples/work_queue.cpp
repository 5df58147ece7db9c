// work_queue: asyncio's producer/consumer queue (asyncio.Queue, worker tasks,
// queue.join()) with the broker as the queue. Coroutine style (asio::use_awaitable).
//
// A queue group does the dispatching: every worker subscribes to the jobs topic with the
// same queue name, and the broker hands each job to exactly one of them. Workers report
// each finished job on a `done` topic; the producer counts them (its join()) and then
// checks that every job was delivered once and done once.
//
//   producer --pub jobs--> [broker: queue group "workers"] --> worker-1 | worker-2 | ...
//   producer <--------------------- done ---------------------- (each worker)
//
// Run it against a broker (scripts/run.sh starts one on port 4700):
//   build/examples/work_queue --jobs 100 --workers 3

#include <chrono>
#include <cstdint>
#include <exception>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/async_latch.hpp"
#include "common/command_line.hpp"
#include "common/message_channel.hpp"
#include "tidings/asio.hpp"
#include "tidings/client/connection.hpp"

namespace {

namespace asio = tidings::asio;
namespace client = tidings::client;
using tidings::examples::async_latch;
using tidings::examples::message_channel;
using json = nlohmann::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr std::string_view queue_name = "workers";

// The job itself: the length of the Collatz sequence from `n`. Cheap, deterministic,
// and different for each job, so the producer can check every result it gets back.
int collatz_steps(std::int64_t n) {
  int steps = 0;
  for (; n != 1; ++steps)
    n = n % 2 == 0 ? n / 2 : 3 * n + 1;
  return steps;
}

std::int64_t job_input(int job) {
  return 27 + 7 * static_cast<std::int64_t>(job);
}

// The job number in a job or a report; -1 when there is none (not our message).
int job_number(const json& body) {
  if (!body.is_object()) return -1;
  const auto found = body.find("job");
  if (found == body.end() || !found->is_number_integer()) return -1;
  const auto value = found->get<std::int64_t>();
  return value >= 0 && value < 100'000'000 ? static_cast<int>(value) : -1;
}

struct worker {
  worker(asio::any_io_executor executor, std::string worker_name, client::options settings)
      : name(std::move(worker_name)), connection(executor, std::move(settings)), inbox(executor) {}

  std::string name;
  client::connection connection;
  message_channel inbox;
  std::vector<int> received;  // job numbers in the order the broker delivered them
  int done = 0;
};

// Everything the asynchronous work refers to lives here, owned by main(): it outlives
// io_context::run(), so no completion can reach a destroyed object.
struct work_queue {
  work_queue(asio::any_io_executor executor, client::options settings, int job_count,
             int worker_count)
      : jobs(job_count),
        base(std::move(settings)),
        prefix(tidings::examples::run_prefix("work_queue")),
        jobs_topic(prefix + ".jobs"),
        done_topic(prefix + ".done"),
        producer(executor, connection_settings("producer")),
        workers_ready(executor, static_cast<std::size_t>(worker_count)),
        workers_finished(executor, static_cast<std::size_t>(worker_count)),
        all_done(executor, static_cast<std::size_t>(job_count)),
        done_count(static_cast<std::size_t>(job_count), 0) {
    for (int i = 1; i <= worker_count; ++i) {
      const auto name = "worker-" + std::to_string(i);
      workers.push_back(std::make_unique<worker>(executor, name, connection_settings(name)));
    }
  }

  // Lost connections are not retried: core delivery is at most once, so jobs published
  // meanwhile would be gone and the exactly-once check would fail later anyway. Better
  // to say so at once.
  client::options connection_settings(const std::string& role) {
    client::options settings = base;
    settings.name = "work_queue/" + role;
    settings.reconnect.enabled = false;
    settings.on_disconnected = [this, role](const client::error_code& ec) {
      if (!finishing) fail(role + " lost its connection: " + ec.message());
    };
    settings.on_error = [this, role](const client::error& e) {
      fail(role + " got an error from the broker: " + e.code.message() + " (" + e.message + ")");
    };
    return settings;
  }

  // The first fatal error wins; everything that waits is woken so the run can unwind.
  void fail(std::string reason) {
    if (failure) return;
    failure = std::move(reason);
    std::cerr << "error: " << *failure << "\n";
    workers_ready.abort();
    workers_finished.abort();
    all_done.abort();
    close_all();
  }

  void close_all() {
    finishing = true;
    for (auto& w : workers) {
      w->inbox.close();
      w->connection.close();
    }
    producer.close();
  }

  int jobs;
  client::options base;
  std::string prefix;
  std::string jobs_topic;
  std::string done_topic;
  client::connection producer;
  std::vector<std::unique_ptr<worker>> workers;
  async_latch workers_ready;
  async_latch workers_finished;
  async_latch all_done;
  std::vector<int> done_count;  // per job: how many `done` reports
  std::optional<std::string> failure;
  bool finishing = false;
};

std::string describe(std::exception_ptr failure) {
  try {
    std::rethrow_exception(std::move(failure));
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

// publish() never waits: when the outbound buffer is full it says so, and we wait for
// room. That is how a fast publisher is slowed down to the network's pace.
asio::awaitable<client::error_code> publish_paced(client::connection& connection,
                                                  const std::string& topic,
                                                  const std::string& body) {
  for (;;) {
    auto ec = connection.publish(topic, body);
    if (ec != client::errc::outbound_full) co_return ec;
    co_await connection.async_wait_writable(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return ec;
  }
}

// One worker: its own connection, a queue-group subscription, and a loop that takes one
// job at a time from its inbox, as an asyncio worker task awaits queue.get().
asio::awaitable<void> run_worker(work_queue& q, worker& w, std::chrono::milliseconds work_time) {
  client::error_code ec;
  co_await w.connection.async_connect(asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    q.fail(w.name + " " + tidings::examples::cannot_connect(q.base, ec));
    co_return;
  }
  const client::subscribe_options in_group{.queue = queue_name};
  auto subscription = co_await w.connection.async_subscribe(
      q.jobs_topic,
      [&w](const client::message_view& delivery) {
        // Recorded on arrival, before the job waits in the inbox, so that a duplicate
        // delivery is counted even if it comes after the worker stopped taking jobs.
        w.received.push_back(job_number(json::parse(delivery.data, nullptr, false)));
        w.inbox.push(client::message(delivery));
      },
      in_group, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    q.fail(w.name + " cannot subscribe: " + ec.message());
    co_return;
  }
  // The broker's `ok` means the subscription is in place: from now on no job published
  // can miss this worker. This, not a sleep, is what makes startup safe.
  q.workers_ready.count_down();

  asio::steady_timer work(co_await asio::this_coro::executor);
  while (auto delivery = co_await w.inbox.receive()) {
    const auto job = json::parse(delivery->data, nullptr, false);
    if (job_number(job) < 0 || !job.contains("n") || !job["n"].is_number_integer()) {
      std::cerr << w.name << ": ignoring a malformed job: " << delivery->data << "\n";
      continue;
    }
    // Stands in for the I/O a real job would wait for, so that workers interleave.
    if (work_time.count() > 0) {
      work.expires_after(work_time);
      co_await work.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    const json report{{"job", job["job"]},
                      {"worker", w.name},
                      {"result", collatz_steps(job["n"].get<std::int64_t>())}};
    const auto body = report.dump();
    if (const auto publish_ec = co_await publish_paced(w.connection, q.done_topic, body)) {
      q.fail(w.name + " cannot report job " + job["job"].dump() + ": " + publish_ec.message());
      co_return;
    }
    ++w.done;
  }

  if (!q.failure) {
    // The round trip makes the broker hand over anything it routed to this worker
    // earlier, so a duplicate delivery is seen before the producer's final check. Only
    // then drain: drain unsubscribes first and drops what is still on its way.
    co_await w.connection.async_flush(10s, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) q.fail(w.name + " cannot flush: " + ec.message());
    subscription.detach();  // drain ends it, together with the connection
    co_await w.connection.async_drain(10s, asio::redirect_error(asio::use_awaitable, ec));
  }
  q.workers_finished.count_down();
}

asio::awaitable<int> run_producer(work_queue& q, std::chrono::milliseconds work_time,
                                  std::chrono::seconds timeout) {
  const auto executor = co_await asio::this_coro::executor;
  const auto deadline = clock_type::now() + timeout;
  std::cout << "work_queue: " << q.jobs << " jobs for " << q.workers.size() << " workers via "
            << tidings::examples::server_name(q.base) << " (topics under " << q.prefix << ".)\n";

  for (auto& w : q.workers) {
    asio::co_spawn(executor, run_worker(q, *w, work_time), [&q, &w](std::exception_ptr e) {
      if (e) q.fail(w->name + " failed: " + describe(e));
    });
  }

  client::error_code ec;
  co_await q.producer.async_connect(asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    q.fail("producer " + tidings::examples::cannot_connect(q.base, ec));
    co_return tidings::examples::exit_failure;
  }
  const client::subscribe_options plain;
  auto done_subscription = co_await q.producer.async_subscribe(
      q.done_topic,
      [&q](const client::message_view& delivery) {
        const auto report = json::parse(delivery.data, nullptr, false);
        const int job = job_number(report);
        if (job < 0 || job >= q.jobs) {
          q.fail("a done report names no job of this run: " + std::string(delivery.data));
          return;
        }
        const int expected = collatz_steps(job_input(job));
        const auto result = report.find("result");
        if (result == report.end() || *result != expected) {
          q.fail("job " + std::to_string(job) +
                 " has a wrong result: " + std::string(delivery.data));
          return;
        }
        if (++q.done_count[static_cast<std::size_t>(job)] == 1) q.all_done.count_down();
      },
      plain, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    q.fail("cannot subscribe to " + q.done_topic + ": " + ec.message());
    co_return tidings::examples::exit_failure;
  }

  if (!co_await q.workers_ready.wait_until(deadline)) {
    if (!q.failure) q.fail("the workers did not subscribe in time");
    co_return tidings::examples::exit_failure;
  }
  std::cout << q.workers.size() << " workers subscribed to " << q.jobs_topic << " in queue group '"
            << queue_name << "'\n";

  for (int job = 0; job < q.jobs && !q.failure; ++job) {
    const auto body = json{{"job", job}, {"n", job_input(job)}}.dump();
    if (const auto publish_ec = co_await publish_paced(q.producer, q.jobs_topic, body)) {
      q.fail("cannot publish job " + std::to_string(job) + ": " + publish_ec.message());
      co_return tidings::examples::exit_failure;
    }
  }
  std::cout << "published " << q.jobs << " jobs, waiting for them to be done\n";

  // The join(): every job reported done at least once.
  if (!co_await q.all_done.wait_until(deadline)) {
    if (!q.failure) {
      q.fail(std::to_string(q.all_done.remaining()) + " of " + std::to_string(q.jobs) +
             " jobs were not done within " + std::to_string(timeout.count()) + "s");
    }
    co_return tidings::examples::exit_failure;
  }

  // Before judging "exactly once", make sure nothing is still on its way: (1) our flush
  // proves every job was routed, (2) each worker then flushes its own connection (so it
  // has seen every delivery the broker made to it) and finishes what it holds, (3) our
  // second flush picks up the reports the workers published before their flush.
  co_await q.producer.async_flush(10s, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    q.fail("flush failed: " + ec.message());
    co_return tidings::examples::exit_failure;
  }
  for (auto& w : q.workers)
    w->inbox.close();
  if (!co_await q.workers_finished.wait_until(deadline)) {
    if (!q.failure) q.fail("the workers did not finish in time");
    co_return tidings::examples::exit_failure;
  }
  co_await q.producer.async_flush(10s, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    q.fail("flush failed: " + ec.message());
    co_return tidings::examples::exit_failure;
  }
  if (q.failure) co_return tidings::examples::exit_failure;

  std::map<int, int> deliveries;  // job -> how many workers received it
  for (const auto& w : q.workers) {
    std::cout << w->name << ": " << w->done << " jobs\n";
    for (const int job : w->received)
      ++deliveries[job];
  }
  int problems = 0;
  for (int job = 0; job < q.jobs; ++job) {
    const int delivered = deliveries.count(job) != 0 ? deliveries[job] : 0;
    const int done = q.done_count[static_cast<std::size_t>(job)];
    if (delivered != 1 || done != 1) {
      std::cerr << "job " << job << ": delivered " << delivered << " times, done " << done
                << " times\n";
      ++problems;
    }
  }
  if (deliveries.size() > static_cast<std::size_t>(q.jobs)) {
    std::cerr << "workers received jobs that were never published\n";
    ++problems;
  }
  if (problems != 0) {
    std::cerr << "error: " << problems << " of " << q.jobs << " jobs were not done exactly once\n";
    co_return tidings::examples::exit_failure;
  }
  std::cout << "all " << q.jobs << " jobs done exactly once\n";
  co_return tidings::examples::exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  int jobs = 100;
  int workers = 3;
  int work_ms = 2;
  int timeout_s = 30;
  client::options settings;
  if (const auto stop = tidings::examples::parse_command_line(
          argc, argv,
          "A queue group of workers shares the jobs one producer publishes; every job is done "
          "exactly once, and the producer waits until all are.",
          {{.name = "--jobs", .help = "jobs to publish", .number = &jobs, .min = 1, .max = 1000000},
           {.name = "--workers",
            .help = "worker connections",
            .number = &workers,
            .min = 1,
            .max = 64},
           {.name = "--work-ms",
            .help = "simulated time per job",
            .number = &work_ms,
            .min = 0,
            .max = 10000},
           {.name = "--timeout",
            .help = "seconds to wait for everything",
            .number = &timeout_s,
            .min = 1,
            .max = 3600}},
          settings)) {
    return *stop;
  }

  // Progress shows at once, even through a pipe (a test or `| tee` watching for it).
  std::cout << std::unitbuf;
  // One thread runs every connection: a connection is not thread-safe, and a single
  // event loop is all this needs.
  asio::io_context io;
  work_queue q(io.get_executor(), settings, jobs, workers);
  int exit_code = tidings::examples::exit_failure;
  asio::co_spawn(
      io, run_producer(q, std::chrono::milliseconds(work_ms), std::chrono::seconds(timeout_s)),
      [&](std::exception_ptr e, int code) {
        if (e) q.fail("the producer failed: " + describe(e));
        exit_code = e ? tidings::examples::exit_failure : code;
        // io.run() returns once no connection is left open.
        q.close_all();
      });
  io.run();
  return q.failure ? tidings::examples::exit_failure : exit_code;
}
