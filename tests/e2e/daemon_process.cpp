#include "daemon_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace tidings::test {
namespace {

constexpr std::string_view ready_marker = "ready: listening on ";

std::runtime_error system_error(const std::string& what, int error) {
  return std::runtime_error(what + ": " + std::strerror(error));
}

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// posix_spawn's attributes and file actions, destroyed on every path out.
struct spawn_setup {
  posix_spawn_file_actions_t actions{};
  posix_spawnattr_t attributes{};
  spawn_setup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attributes);
  }
  ~spawn_setup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
  spawn_setup(const spawn_setup&) = delete;
  spawn_setup& operator=(const spawn_setup&) = delete;
};

}  // namespace

std::optional<std::uint16_t> parse_ready_port(std::string_view line) {
  const auto at = line.find(ready_marker);
  if (at == std::string_view::npos) return std::nullopt;
  auto address = line.substr(at + ready_marker.size());
  address = address.substr(0, address.find_first_of(" \t\"}"));
  const auto colon = address.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const auto digits = address.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

namespace {

// A pipe holding all of `input`, closed for writing: the read end is the child's stdin.
// Written before the child exists, so that a child that never reads cannot block the
// test and one that exits early cannot raise SIGPIPE in it.
int input_pipe(const std::string& input) {
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) throw system_error("pipe2", errno);
  const auto fail = [&](const std::string& what, int error) {
    ::close(fds[0]);
    ::close(fds[1]);
    return system_error(what, error);
  };
  if (input.size() > 65536 && ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(input.size())) < 0) {
    throw fail("F_SETPIPE_SZ (stdin content too large)", errno);
  }
  ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
  std::size_t written = 0;
  while (written < input.size()) {
    const ssize_t got = ::write(fds[1], input.data() + written, input.size() - written);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) throw fail("write to the stdin pipe", got < 0 ? errno : EAGAIN);
    written += static_cast<std::size_t>(got);
  }
  ::close(fds[1]);
  return fds[0];
}

}  // namespace

daemon_process::daemon_process(std::string path, std::vector<std::string> args,
                               std::vector<std::string> env, std::optional<std::string> input) {
  const int stdin_fd = input ? input_pipe(*input) : -1;
  struct stdin_closer {
    int fd;
    ~stdin_closer() {
      if (fd >= 0) ::close(fd);
    }
  } closer{stdin_fd};

  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw system_error("pipe2", errno);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    const int error = errno;
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw system_error("pipe2", error);
  }
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  ::fcntl(out_fd_, F_SETFL, ::fcntl(out_fd_, F_GETFL) | O_NONBLOCK);
  ::fcntl(err_fd_, F_SETFL, ::fcntl(err_fd_, F_GETFL) | O_NONBLOCK);

  spawn_setup setup;
  if (stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&setup.actions, stdin_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&setup.actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&setup.actions, err_pipe[1], 2);
  // A test runner started in the background may ignore SIGINT or block signals; the
  // daemon must see them as a shell would deliver them.
  sigset_t defaults;
  sigemptyset(&defaults);
  for (const int s : {SIGINT, SIGTERM, SIGPIPE, SIGHUP})
    sigaddset(&defaults, s);
  sigset_t no_mask;
  sigemptyset(&no_mask);
  posix_spawnattr_setsigdefault(&setup.attributes, &defaults);
  posix_spawnattr_setsigmask(&setup.attributes, &no_mask);
  posix_spawnattr_setflags(&setup.attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<std::string> environment;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    if (std::string_view(*entry).rfind("TIDINGS_", 0) != 0) environment.emplace_back(*entry);
  }
  environment.insert(environment.end(), env.begin(), env.end());

  std::vector<char*> argv{path.data()};
  for (auto& arg : args)
    argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& entry : environment)
    envp.push_back(entry.data());
  envp.push_back(nullptr);

  const int spawned = ::posix_spawn(&pid_, path.c_str(), &setup.actions, &setup.attributes,
                                    argv.data(), envp.data());
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (spawned != 0) {
    pid_ = -1;
    close_pipes();
    throw system_error("posix_spawn " + path, spawned);
  }
}

daemon_process::~daemon_process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    // SIGKILL cannot be caught: the bound is only a guard against the impossible.
    wait_exit(10s);
  }
  close_pipes();
}

void daemon_process::close_pipes() {
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
  out_fd_ = -1;
  err_fd_ = -1;
}

void daemon_process::pump(std::chrono::milliseconds wait) {
  pollfd fds[2];
  nfds_t count = 0;
  for (const int fd : {out_fd_, err_fd_}) {
    if (fd >= 0) fds[count++] = pollfd{fd, POLLIN, 0};
  }
  const int ready = ::poll(count == 0 ? nullptr : fds, count, static_cast<int>(wait.count()));
  if (ready <= 0) return;
  char chunk[16384];
  for (auto [fd, text] : {std::pair{&out_fd_, &out_}, std::pair{&err_fd_, &err_}}) {
    while (*fd >= 0) {
      const ssize_t got = ::read(*fd, chunk, sizeof chunk);
      if (got > 0) {
        text->append(chunk, static_cast<std::size_t>(got));
        continue;
      }
      if (got < 0 && errno == EINTR) continue;
      if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        ::close(*fd);  // end of output
        *fd = -1;
      }
      break;
    }
  }
}

bool daemon_process::try_reap() {
  if (status_) return true;
  if (pid_ <= 0) return false;
  int raw = 0;
  const pid_t got = ::waitpid(pid_, &raw, WNOHANG);
  if (got != pid_) return false;
  exit_status status;
  if (WIFEXITED(raw)) {
    status.exited = true;
    status.code = WEXITSTATUS(raw);
  } else if (WIFSIGNALED(raw)) {
    status.signal = WTERMSIG(raw);
  }
  status_ = status;
  // The child is gone: whatever it wrote is in the pipes, up to their end.
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while ((out_fd_ >= 0 || err_fd_ >= 0) && std::chrono::steady_clock::now() < deadline) {
    pump(10ms);
  }
  return true;
}

std::optional<daemon_process::exit_status> daemon_process::wait_exit(
    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (try_reap()) return status_;
    const int left = remaining_ms(deadline);
    if (left == 0) return std::nullopt;
    // Reading the pipes keeps the child from blocking on a full one; the poll's timeout
    // is the small step between two looks at the child.
    pump(std::chrono::milliseconds(std::min(left, 10)));
  }
}

void daemon_process::send_signal(int signal_number) {
  if (pid_ <= 0 || status_) throw std::runtime_error("send_signal: the daemon is not running");
  if (::kill(pid_, signal_number) != 0) throw system_error("kill", errno);
}

std::vector<std::string> lines_of(std::string_view text) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    const auto end = text.find('\n');
    lines.emplace_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

std::vector<std::string> daemon_process::err_lines() const {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (auto end = err_.find('\n'); end != std::string::npos; end = err_.find('\n', start)) {
    lines.push_back(err_.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::optional<std::string> daemon_process::wait_for_line(std::string_view text,
                                                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (const auto& line : err_lines()) {
      if (line.find(text) != std::string::npos) return line;
    }
    if (remaining_ms(deadline) == 0) return std::nullopt;
    if (try_reap()) {
      // Everything is read: one last look, then give up.
      for (const auto& line : err_lines()) {
        if (line.find(text) != std::string::npos) return line;
      }
      return std::nullopt;
    }
    pump(std::chrono::milliseconds(std::min(remaining_ms(deadline), 10)));
  }
}

std::uint16_t daemon_process::wait_ready(std::chrono::milliseconds timeout) {
  const auto line = wait_for_line(ready_marker, timeout);
  if (!line) {
    throw std::runtime_error(std::string(status_ ? "tidingsd exited" : "timed out") +
                             " before its ready line; stderr:\n" + err_ + "stdout:\n" + out_);
  }
  const auto port = parse_ready_port(*line);
  if (!port) throw std::runtime_error("cannot read the port from the ready line: " + *line);
  port_ = *port;
  return port_;
}

}  // namespace tidings::test
