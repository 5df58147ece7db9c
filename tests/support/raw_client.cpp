#include "raw_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tidings::test {
namespace {

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// The body length a frame's 4-byte big-endian prefix announces.
std::size_t frame_length(const std::string& buffer) {
  const auto* p = reinterpret_cast<const unsigned char*>(buffer.data());
  return (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) |
         std::size_t{p[3]};
}

}  // namespace

raw_client::raw_client(std::uint16_t port, std::chrono::milliseconds timeout) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error(std::string("connect: ") + std::strerror(error));
  }
}

raw_client::~raw_client() {
  if (fd_ >= 0) ::close(fd_);
}

raw_client::raw_client(raw_client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      buffer_(std::move(other.buffer_)),
      next_ping_id_(other.next_ping_id_) {}

void raw_client::send_raw(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string length_prefix(std::uint32_t length) {
  std::string prefix(4, '\0');
  prefix[0] = static_cast<char>(length >> 24);
  prefix[1] = static_cast<char>(length >> 16);
  prefix[2] = static_cast<char>(length >> 8);
  prefix[3] = static_cast<char>(length);
  return prefix;
}

std::string framed(std::string_view body) {
  std::string frame = length_prefix(static_cast<std::uint32_t>(body.size()));
  frame.append(body);
  return frame;
}

void raw_client::send_frame(std::string_view body) {
  send_raw(framed(body));
}

bool raw_client::fill(std::size_t n, std::chrono::steady_clock::time_point deadline) {
  char chunk[65536];
  while (buffer_.size() < n) {
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    const ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(got));
  }
  return true;
}

std::optional<std::string> raw_client::recv_frame(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!fill(4, deadline)) return std::nullopt;
  const std::size_t length = frame_length(buffer_);
  if (!fill(4 + length, deadline)) return std::nullopt;
  std::string body = buffer_.substr(4, length);
  buffer_.erase(0, 4 + length);
  return body;
}

json raw_client::recv(std::chrono::milliseconds timeout) {
  auto body = recv_frame(timeout);
  if (!body) throw std::runtime_error("no frame within the timeout (or connection closed)");
  return json::parse(*body);
}

json raw_client::recv_op(std::string_view op, std::vector<json>* skipped,
                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    json frame = recv(left.count() > 0 ? left : std::chrono::milliseconds(0));
    if (frame.value("op", "") == op) return frame;
    if (skipped != nullptr) skipped->push_back(std::move(frame));
  }
}

std::vector<json> raw_client::sync(std::chrono::milliseconds timeout) {
  const auto id = next_ping_id_++;
  send_json({{"op", "ping"}, {"id", id}});
  std::vector<json> before;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    json frame = recv(left.count() > 0 ? left : std::chrono::milliseconds(0));
    if (frame.value("op", "") == "pong" && frame.contains("id") && frame["id"] == id) {
      return before;
    }
    before.push_back(std::move(frame));
  }
}

bool raw_client::wait_closed(std::chrono::milliseconds timeout, std::vector<std::string>* rest) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char chunk[65536];
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    const ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    buffer_.append(chunk, static_cast<std::size_t>(got));
  }
  // Hand back the whole frames that arrived before the close.
  while (rest != nullptr && buffer_.size() >= 4) {
    const std::size_t length = frame_length(buffer_);
    if (buffer_.size() < 4 + length) break;
    rest->push_back(buffer_.substr(4, length));
    buffer_.erase(0, 4 + length);
  }
  return true;
}

void raw_client::shutdown_write() {
  ::shutdown(fd_, SHUT_WR);
}

void raw_client::set_receive_buffer(int bytes) {
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

}  // namespace tidings::test
