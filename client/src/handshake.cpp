#include "tidings/client/detail/handshake.hpp"

#include <algorithm>

#include "tidings/protocol/encoder.hpp"
#include "tidings/protocol/limits.hpp"

namespace tidings::client::detail {

bool handshake::on_info(const options& settings, std::int64_t id, std::string& out) {
  if (stage_ != stage::awaiting_info) return false;
  connect_id_ = id;
  protocol::connect_message hello;
  if (!settings.name.empty()) hello.name = settings.name;
  if (settings.token) hello.token = *settings.token;
  if (settings.user) hello.user = *settings.user;
  if (settings.pass) hello.pass = *settings.pass;
  hello.echo = settings.echo;
  std::string id_text;
  protocol::append_integer(id_text, id);
  protocol::encode_connect(out, hello, id_text);
  stage_ = stage::awaiting_ok;
  return true;
}

std::uint32_t handshake::server_frame_limit(std::uint64_t max_frame) noexcept {
  const auto limit = max_frame + protocol::server_frame_allowance;
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(limit, UINT32_MAX));
}

}  // namespace tidings::client::detail
