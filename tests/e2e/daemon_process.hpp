#pragma once

// A tidingsd child process for end-to-end tests: spawned with its own arguments and
// environment, stdout and stderr captured through pipes, and every wait bounded by a
// deadline. The destructor kills (SIGKILL) and reaps a child that is still running, so a
// failing test leaks no process.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tidings::test {

using namespace std::chrono_literals;

class daemon_process {
 public:
  struct exit_status {
    bool exited = false;  // ended through exit(): `code` is meaningful
    int code = -1;
    int signal = 0;  // killed by this signal (when !exited)
  };

  // Starts `path` with `args`. The child's environment is the test's, without any
  // TIDINGS_* variable (so that the developer's own settings cannot leak in), plus `env`
  // (entries "NAME=value"). Its stdin is `input` when given (written before the start,
  // then end of file; at most the capacity of a pipe, 1 MiB), else /dev/null. Throws
  // std::runtime_error when the spawn fails.
  daemon_process(std::string path, std::vector<std::string> args, std::vector<std::string> env = {},
                 std::optional<std::string> input = std::nullopt);
  ~daemon_process();
  daemon_process(const daemon_process&) = delete;
  daemon_process& operator=(const daemon_process&) = delete;

  // Reads stderr until the line `ready: listening on HOST:PORT` and returns PORT. Throws
  // std::runtime_error (quoting the output so far) on timeout or when the child exits.
  std::uint16_t wait_ready(std::chrono::milliseconds timeout = 10s);
  // The port named by the ready line (0 before it).
  std::uint16_t port() const noexcept { return port_; }

  void send_signal(int signal_number);
  // Waits for the child to exit, reading its output meanwhile: the status, or nullopt
  // when it is still running at the deadline. Once reaped, the status is kept.
  std::optional<exit_status> wait_exit(std::chrono::milliseconds timeout);
  bool running() const noexcept { return !status_; }

  // Waits until a complete stderr line contains `text`, and returns that line.
  std::optional<std::string> wait_for_line(std::string_view text,
                                           std::chrono::milliseconds timeout = 5s);
  // Reads whatever output the child has written so far, without blocking.
  void read_available() { pump(0ms); }

  const std::string& out() const noexcept { return out_; }
  const std::string& err() const noexcept { return err_; }
  // The complete stderr lines read so far, without their newlines.
  std::vector<std::string> err_lines() const;

  pid_t pid() const noexcept { return pid_; }

 private:
  // Reads what is available on both pipes, waiting up to `wait` for the first bytes.
  void pump(std::chrono::milliseconds wait);
  bool try_reap();
  void close_pipes();

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
  std::uint16_t port_ = 0;
  std::optional<exit_status> status_;
};

// `text` cut at its newlines (a last line without one included).
std::vector<std::string> lines_of(std::string_view text);

// Parses the port from a line containing `ready: listening on HOST:PORT`.
std::optional<std::uint16_t> parse_ready_port(std::string_view line);

}  // namespace tidings::test
