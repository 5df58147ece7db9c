#include "tidings/protocol/encoder.hpp"

#include <charconv>
#include <cstring>

#include "tidings/protocol/frame_decoder.hpp"
#include "tidings/protocol/json.hpp"

namespace tidings::protocol {
namespace {

void append_unsigned(std::string& out, std::uint64_t value) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

void append_bool(std::string& out, bool value) {
  out += value ? "true" : "false";
}

// `,"name":` then the caller's value.
void append_key(std::string& out, std::string_view name) {
  out += ",\"";
  out += name;
  out += "\":";
}

void append_id(std::string& out, std::string_view raw_id) {
  if (raw_id.empty()) return;
  append_key(out, "id");
  out += raw_id;
}

// Frames with nothing but an op and an optional id.
void encode_bare(std::string& out, std::string_view op_text, std::string_view raw_id) {
  const auto start = begin_frame(out);
  out += "{\"op\":\"";
  out += op_text;
  out += '"';
  append_id(out, raw_id);
  out += '}';
  finish_frame(out, start);
}

constexpr std::string_view msg_head = "{\"op\":\"msg\",\"sid\":";

}  // namespace

std::size_t begin_frame(std::string& out) {
  const std::size_t start = out.size();
  out.append(frame_prefix_size, '\0');
  return start;
}

void finish_frame(std::string& out, std::size_t frame_start) {
  const auto length = static_cast<std::uint32_t>(out.size() - frame_start - frame_prefix_size);
  store_frame_length(out.data() + frame_start, length);
}

void append_integer(std::string& out, std::int64_t value) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

void encode_info(std::string& out, const info_message& info) {
  const auto start = begin_frame(out);
  out += "{\"op\":\"info\"";
  append_key(out, "server");
  json::append_string(out, info.server);
  append_key(out, "version");
  json::append_string(out, info.version);
  append_key(out, "proto");
  append_integer(out, info.proto);
  append_key(out, "max_frame");
  append_unsigned(out, info.max_frame);
  append_key(out, "max_pending");
  append_unsigned(out, info.max_pending);
  append_key(out, "write_deadline_ms");
  append_unsigned(out, info.write_deadline_ms);
  append_key(out, "auth_required");
  append_bool(out, info.auth_required);
  append_key(out, "client_id");
  append_unsigned(out, info.client_id);
  append_key(out, "ping_interval_ms");
  append_unsigned(out, info.ping_interval_ms);
  out += '}';
  finish_frame(out, start);
}

void encode_ok(std::string& out, std::string_view raw_id) {
  encode_bare(out, "ok", raw_id);
}

void encode_err(std::string& out, error_code code, std::string_view message,
                std::string_view raw_id, std::string_view topic) {
  const auto start = begin_frame(out);
  out += "{\"op\":\"err\",\"code\":\"";
  out += wire_name(code);
  out += '"';
  append_key(out, "message");
  json::append_string(out, message);
  append_id(out, raw_id);
  if (!topic.empty()) {
    append_key(out, "topic");
    json::append_string(out, topic);
  }
  out += '}';
  finish_frame(out, start);
}

void encode_ping(std::string& out, std::string_view raw_id) {
  encode_bare(out, "ping", raw_id);
}

void encode_pong(std::string& out, std::string_view raw_id) {
  encode_bare(out, "pong", raw_id);
}

void encode_connect(std::string& out, const connect_message& connect, std::string_view raw_id) {
  const auto start = begin_frame(out);
  out += "{\"op\":\"connect\"";
  append_key(out, "proto");
  append_integer(out, connect.proto);
  const std::pair<std::string_view, const std::optional<std::string_view>*> strings[] = {
      {"name", &connect.name},
      {"token", &connect.token},
      {"user", &connect.user},
      {"pass", &connect.pass}};
  for (const auto& [key, value] : strings) {
    if (!value->has_value()) continue;
    append_key(out, key);
    json::append_string(out, **value);
  }
  append_key(out, "echo");
  append_bool(out, connect.echo);
  append_id(out, raw_id);
  out += '}';
  finish_frame(out, start);
}

void encode_pub(std::string& out, const pub_message& pub, std::string_view raw_id) {
  const auto start = begin_frame(out);
  out += "{\"op\":\"pub\"";
  append_key(out, "topic");
  json::append_string(out, pub.topic);
  if (!pub.reply.empty()) {
    append_key(out, "reply");
    json::append_string(out, pub.reply);
  }
  if (!pub.headers.empty()) {
    append_key(out, "headers");
    out += pub.headers;
  }
  append_id(out, raw_id);
  append_key(out, "data");
  out += pub.data;
  out += '}';
  finish_frame(out, start);
}

void encode_sub(std::string& out, const sub_message& sub, std::string_view raw_id) {
  const auto start = begin_frame(out);
  out += "{\"op\":\"sub\"";
  append_key(out, "sid");
  append_unsigned(out, sub.sid);
  append_key(out, "topic");
  json::append_string(out, sub.topic);
  if (!sub.queue.empty()) {
    append_key(out, "queue");
    json::append_string(out, sub.queue);
  }
  append_id(out, raw_id);
  out += '}';
  finish_frame(out, start);
}

void encode_unsub(std::string& out, const unsub_message& unsub, std::string_view raw_id) {
  const auto start = begin_frame(out);
  out += "{\"op\":\"unsub\"";
  append_key(out, "sid");
  append_unsigned(out, unsub.sid);
  if (unsub.max != 0) {
    append_key(out, "max");
    append_unsigned(out, unsub.max);
  }
  append_id(out, raw_id);
  out += '}';
  finish_frame(out, start);
}

void encode_msg_body(std::string& out, std::string_view topic, std::string_view data,
                     std::string_view reply, std::string_view headers) {
  out += "\"topic\":";
  json::append_string(out, topic);
  if (!reply.empty()) {
    append_key(out, "reply");
    json::append_string(out, reply);
  }
  if (!headers.empty()) {
    append_key(out, "headers");
    out += headers;
  }
  append_key(out, "data");
  out += data;
  out += '}';
}

void encode_msg(std::string& out, const msg_message& msg) {
  std::string body;
  encode_msg_body(body, msg.topic, msg.data, msg.reply, msg.headers);
  const msg_prefix prefix(msg.sid, body.size());
  out += prefix.view();
  out += body;
}

std::size_t write_msg_prefix(char* out, std::uint64_t sid, std::size_t body_size) noexcept {
  char* const json_start = out + frame_prefix_size;
  std::memcpy(json_start, msg_head.data(), msg_head.size());
  char* p = json_start + msg_head.size();
  p = std::to_chars(p, out + msg_prefix::capacity - 1, sid).ptr;
  *p++ = ',';
  const auto json_size = static_cast<std::size_t>(p - json_start);
  store_frame_length(out, static_cast<std::uint32_t>(json_size + body_size));
  return frame_prefix_size + json_size;
}

std::size_t msg_prefix_size(std::uint64_t sid) noexcept {
  std::size_t digits = 1;
  while (sid >= 10) {
    sid /= 10;
    ++digits;
  }
  return frame_prefix_size + msg_head.size() + digits + 1;
}

msg_prefix::msg_prefix(std::uint64_t sid, std::size_t body_size) noexcept
    : size_(static_cast<std::uint8_t>(write_msg_prefix(bytes_.data(), sid, body_size))) {}

}  // namespace tidings::protocol
