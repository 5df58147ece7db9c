#include "tidings/protocol/parser.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

#include "tidings/protocol/json.hpp"
#include "tidings/protocol/limits.hpp"
#include "tidings/protocol/topic.hpp"

namespace tidings::protocol {
namespace {

// Every member name either side understands. Anything else is ignored (section 1).
enum class field : std::uint8_t {
  op,
  id,
  topic,
  data,
  reply,
  headers,
  sid,
  queue,
  max,
  proto,
  name,
  token,
  user,
  pass,
  echo,
  server,
  version,
  max_frame,
  max_pending,
  write_deadline_ms,
  auth_required,
  client_id,
  ping_interval_ms,
  code,
  message,
  unknown,
};
constexpr std::size_t field_count = static_cast<std::size_t>(field::unknown);

field lookup_field(std::string_view name) noexcept {
  switch (name.size()) {
    case 2:
      if (name == "op") return field::op;
      if (name == "id") return field::id;
      break;
    case 3:
      if (name == "sid") return field::sid;
      if (name == "max") return field::max;
      break;
    case 4:
      if (name == "data") return field::data;
      if (name == "name") return field::name;
      if (name == "user") return field::user;
      if (name == "pass") return field::pass;
      if (name == "echo") return field::echo;
      if (name == "code") return field::code;
      break;
    case 5:
      if (name == "topic") return field::topic;
      if (name == "reply") return field::reply;
      if (name == "queue") return field::queue;
      if (name == "proto") return field::proto;
      if (name == "token") return field::token;
      break;
    case 6:
      if (name == "server") return field::server;
      break;
    case 7:
      if (name == "headers") return field::headers;
      if (name == "version") return field::version;
      if (name == "message") return field::message;
      break;
    case 9:
      if (name == "max_frame") return field::max_frame;
      if (name == "client_id") return field::client_id;
      break;
    case 11:
      if (name == "max_pending") return field::max_pending;
      break;
    case 13:
      if (name == "auth_required") return field::auth_required;
      break;
    case 16:
      if (name == "ping_interval_ms") return field::ping_interval_ms;
      break;
    case 17:
      if (name == "write_deadline_ms") return field::write_deadline_ms;
      break;
    default:
      break;
  }
  return field::unknown;
}

struct member {
  std::string_view raw;  // the value's JSON text
  json::kind kind = json::kind::null;
  bool present = false;

  // Optional fields whose value is null count as absent (section 1).
  bool given() const noexcept { return present && kind != json::kind::null; }
};

class members {
 public:
  const member& operator[](field f) const noexcept { return values_[static_cast<std::size_t>(f)]; }
  member& operator[](field f) noexcept { return values_[static_cast<std::size_t>(f)]; }

 private:
  std::array<member, field_count> values_{};
};

parse_result failure(error_code code, std::string_view message, bool id_valid = false) {
  parse_result r;
  r.ok = false;
  r.error = {code, message, id_valid};
  return r;
}

constexpr std::string_view invalid_json_text =
    "body is not valid JSON (RFC 8259, UTF-8, nesting at most 128)";

// Scans the frame's top-level object in one pass: validates every value and records
// where the known members lie. Returns an empty message on success.
std::string_view scan_frame(std::string_view body, detail::name_registry& names, members& out) {
  names.clear();
  const char* const end = body.data() + body.size();
  const char* p = json::skip_whitespace(body.data(), end);
  if (p >= end) return invalid_json_text;
  if (*p != '{') {
    json::kind k{};
    const char* after = json::scan_value(p, end, 1, k);
    if (after != nullptr && json::skip_whitespace(after, end) == end) {
      return "frame body must be a JSON object";
    }
    return invalid_json_text;
  }
  p = json::skip_whitespace(p + 1, end);
  if (p < end && *p == '}') {
    return json::skip_whitespace(p + 1, end) == end ? std::string_view{} : invalid_json_text;
  }
  for (;;) {
    bool escaped = false;
    const char* const name_start = p;
    p = json::scan_string(p, end, escaped);
    if (p == nullptr) return invalid_json_text;
    std::string_view name(name_start + 1, static_cast<std::size_t>(p - name_start - 2));
    if (escaped) name = names.decode(name);
    if (!names.add(name)) return "member name repeated at the top level of the frame";
    p = json::skip_whitespace(p, end);
    if (p >= end || *p != ':') return invalid_json_text;
    p = json::skip_whitespace(p + 1, end);
    const char* const value_start = p;
    json::kind k{};
    p = json::scan_value(p, end, 2, k);
    if (p == nullptr) return invalid_json_text;
    const field f = lookup_field(name);
    if (f != field::unknown) {
      out[f] = {std::string_view(value_start, static_cast<std::size_t>(p - value_start)), k, true};
    }
    p = json::skip_whitespace(p, end);
    if (p >= end) return invalid_json_text;
    if (*p == ',') {
      p = json::skip_whitespace(p + 1, end);
      continue;
    }
    if (*p == '}') {
      return json::skip_whitespace(p + 1, end) == end ? std::string_view{} : invalid_json_text;
    }
    return invalid_json_text;
  }
}

// The contents of a string member, decoded into `scratch` only when it has escapes.
std::string_view string_value(const member& m, std::string& scratch) {
  const std::string_view inner = m.raw.substr(1, m.raw.size() - 2);
  if (std::memchr(inner.data(), '\\', inner.size()) == nullptr) return inner;
  json::decode_string(inner, scratch);
  return scratch;
}

// A non-negative integer written without sign, fraction or exponent, at most `limit`.
bool unsigned_value(const member& m, std::uint64_t limit, std::uint64_t& out) {
  if (m.kind != json::kind::number) return false;
  const std::string_view digits = m.raw;
  if (digits.empty() || digits.size() > 20) return false;
  std::uint64_t value = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') return false;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (limit - digit) / 10) return false;
    value = value * 10 + digit;
  }
  out = value;
  return true;
}

// An `id`: an integer within +-(2^53-1) (no fraction, no exponent) or a string of at
// most 64 bytes.
bool read_id(const member& m, std::string& scratch, request_id& out) {
  out.raw = m.raw;
  if (m.kind == json::kind::string) {
    const std::string_view text = string_value(m, scratch);
    if (text.size() > max_string_id_size) return false;
    out.type = request_id::kind::string;
    out.text = text;
    return true;
  }
  if (m.kind != json::kind::number) return false;
  const bool negative = m.raw.front() == '-';
  member magnitude = m;
  if (negative) magnitude.raw.remove_prefix(1);
  std::uint64_t value = 0;
  if (!unsigned_value(magnitude, max_safe_integer, value)) return false;
  out.type = request_id::kind::integer;
  out.integer = negative ? -static_cast<std::int64_t>(value) : static_cast<std::int64_t>(value);
  return true;
}

// Headers: an object of non-empty, unrepeated names to strings.
bool valid_headers(std::string_view raw, detail::name_registry& names) {
  names.clear();
  const char* const end = raw.data() + raw.size();
  const char* p = json::skip_whitespace(raw.data() + 1, end);
  if (*p == '}') return true;
  for (;;) {
    bool escaped = false;
    const char* const name_start = p;
    p = json::scan_string(p, end, escaped);
    std::string_view name(name_start + 1, static_cast<std::size_t>(p - name_start - 2));
    if (escaped) name = names.decode(name);
    if (name.empty() || !names.add(name)) return false;
    p = json::skip_whitespace(p, end);
    p = json::skip_whitespace(p + 1, end);  // the ':'
    if (*p != '"') return false;
    escaped = false;
    p = json::scan_string(p, end, escaped);
    p = json::skip_whitespace(p, end);
    if (*p == '}') return true;
    p = json::skip_whitespace(p + 1, end);  // the ','
  }
}

bool is_string(const member& m) noexcept {
  return m.kind == json::kind::string;
}

// Reads an optional string member; false when it is given but not a string.
bool optional_string(const member& m, std::string& scratch, std::optional<std::string_view>& out) {
  out.reset();
  if (!m.given()) return true;
  if (!is_string(m)) return false;
  out = string_value(m, scratch);
  return true;
}

// What every frame shares, checked in the order of section 3: the body is a valid JSON
// object (bad_json), `op` is a known op (unknown_op), `id` is valid (bad_request). The
// err carries the id only when the id itself is valid. Returns nothing on success.
template <std::size_t N>
std::optional<parse_result> read_head(std::string_view body,
                                      const std::array<std::pair<std::string_view, op>, N>& ops,
                                      detail::name_registry& names, std::string& id_scratch,
                                      std::string& op_scratch, members& m, request_id& id,
                                      op& kind) {
  id = {};
  if (const auto why = scan_frame(body, names, m); !why.empty()) {
    return failure(error_code::bad_json, why);
  }
  bool id_valid = true;
  if (m[field::id].given()) id_valid = read_id(m[field::id], id_scratch, id);
  if (!id_valid) id = {};
  if (!m[field::op].present || !is_string(m[field::op])) {
    return failure(error_code::bad_json, "frame needs a string member 'op'", id_valid);
  }
  const std::string_view name = string_value(m[field::op], op_scratch);
  const auto known =
      std::find_if(ops.begin(), ops.end(), [&](const auto& entry) { return entry.first == name; });
  if (known == ops.end()) return failure(error_code::unknown_op, "unknown op", id_valid);
  kind = known->second;
  if (!id_valid) {
    return failure(error_code::bad_request,
                   "'id' must be an integer within +-(2^53-1) or a string of at most 64 bytes");
  }
  return std::nullopt;
}

}  // namespace

namespace detail {

void name_registry::clear() {
  names.clear();
  decoded_used = 0;
  if (!large.empty()) large.clear();
}

bool name_registry::add(std::string_view name) {
  // Frames have a handful of members: a linear scan beats hashing until there are many.
  constexpr std::size_t linear_limit = 16;
  if (names.size() < linear_limit) {
    for (const auto existing : names) {
      if (existing == name) return false;
    }
    names.push_back(name);
    return true;
  }
  if (large.empty()) large.insert(names.begin(), names.end());
  return large.insert(name).second;
}

void name_registry::shrink() noexcept {
  // A frame with thousands of members (or escaped names) grew these; an idle connection
  // gives that back. A handful of names is the steady state and stays.
  constexpr std::size_t kept_names = 32;
  if (names.capacity() > kept_names) std::vector<std::string_view>().swap(names);
  if (decoded.size() > kept_names ||
      std::any_of(decoded.begin(), decoded.end(),
                  [](const auto& name) { return name->capacity() > kept_scratch_capacity; })) {
    std::vector<std::unique_ptr<std::string>>().swap(decoded);
  }
  decoded_used = 0;
  if (large.bucket_count() > kept_names) std::unordered_set<std::string_view>().swap(large);
}

std::string_view name_registry::decode(std::string_view escaped) {
  if (decoded_used == decoded.size()) decoded.push_back(std::make_unique<std::string>());
  std::string& out = *decoded[decoded_used++];
  json::decode_string(escaped, out);
  return out;
}

}  // namespace detail

std::string_view op_name(op value) noexcept {
  switch (value) {
    case op::connect:
      return "connect";
    case op::pub:
      return "pub";
    case op::sub:
      return "sub";
    case op::unsub:
      return "unsub";
    case op::ping:
      return "ping";
    case op::pong:
      return "pong";
    case op::info:
      return "info";
    case op::msg:
      return "msg";
    case op::ok:
      return "ok";
    case op::err:
      return "err";
  }
  return "?";
}

void client_parser::shrink() noexcept {
  names_.shrink();
  header_names_.shrink();
  for (std::string* scratch :
       {&op_, &topic_, &reply_, &queue_, &name_, &token_, &user_, &pass_, &id_}) {
    if (scratch->capacity() > detail::kept_scratch_capacity) std::string().swap(*scratch);
  }
}

parse_result client_parser::parse(std::string_view body, client_frame& out) {
  static constexpr std::array<std::pair<std::string_view, op>, 6> ops{{{"pub", op::pub},
                                                                       {"sub", op::sub},
                                                                       {"unsub", op::unsub},
                                                                       {"ping", op::ping},
                                                                       {"pong", op::pong},
                                                                       {"connect", op::connect}}};
  members m;
  if (auto failed = read_head(body, ops, names_, id_, op_, m, out.id, out.kind)) return *failed;

  switch (out.kind) {
    case op::pub: {
      const member& topic = m[field::topic];
      const member& reply = m[field::reply];
      const member& headers = m[field::headers];
      if (!topic.given()) return failure(error_code::bad_request, "'pub' needs 'topic'", true);
      if (!is_string(topic))
        return failure(error_code::bad_request, "'topic' must be a string", true);
      if (!m[field::data].present)
        return failure(error_code::bad_request, "'pub' needs 'data'", true);
      if (reply.given() && !is_string(reply)) {
        return failure(error_code::bad_request, "'reply' must be a string", true);
      }
      if (headers.given() &&
          (headers.kind != json::kind::object || !valid_headers(headers.raw, header_names_))) {
        return failure(error_code::bad_request,
                       "'headers' must be an object of non-empty, unrepeated names to strings",
                       true);
      }
      pub_message pub;
      pub.topic = string_value(topic, topic_);
      pub.data = m[field::data].raw;
      if (reply.given()) pub.reply = string_value(reply, reply_);
      if (headers.given()) pub.headers = headers.raw;
      out.body = pub;
      if (!is_valid_topic(pub.topic)) {
        return failure(error_code::invalid_topic,
                       "'topic' must be a concrete topic: 1 to 256 bytes of '.'-separated "
                       "tokens, no wildcards",
                       true);
      }
      if (reply.given() && !is_valid_topic(pub.reply)) {
        return failure(error_code::invalid_topic,
                       "'reply' must be a concrete topic: 1 to 256 bytes of '.'-separated "
                       "tokens, no wildcards",
                       true);
      }
      return {};
    }
    case op::sub: {
      sub_message sub;
      const member& topic = m[field::topic];
      const member& queue = m[field::queue];
      if (!m[field::sid].given() || !unsigned_value(m[field::sid], max_safe_integer, sub.sid) ||
          sub.sid == 0) {
        return failure(error_code::bad_request,
                       "'sid' must be an integer from 1 to 2^53-1, without fraction or exponent",
                       true);
      }
      if (!topic.given()) return failure(error_code::bad_request, "'sub' needs 'topic'", true);
      if (!is_string(topic))
        return failure(error_code::bad_request, "'topic' must be a string", true);
      if (queue.given()) {
        if (!is_string(queue))
          return failure(error_code::bad_request, "'queue' must be a string", true);
        sub.queue = string_value(queue, queue_);
        if (!is_valid_queue_name(sub.queue)) {
          return failure(error_code::bad_request,
                         "'queue' must be 1 to 64 bytes of printable ASCII without spaces", true);
        }
      }
      sub.topic = string_value(topic, topic_);
      out.body = sub;
      if (!is_valid_pattern(sub.topic)) {
        return failure(error_code::invalid_topic,
                       "'topic' must be a pattern: '.'-separated tokens, '*' a whole token, "
                       "'>' the whole last token, 1 to 256 bytes",
                       true);
      }
      return {};
    }
    case op::unsub: {
      unsub_message unsub;
      if (!m[field::sid].given() || !unsigned_value(m[field::sid], max_safe_integer, unsub.sid) ||
          unsub.sid == 0) {
        return failure(error_code::bad_request,
                       "'sid' must be an integer from 1 to 2^53-1, without fraction or exponent",
                       true);
      }
      if (m[field::max].given() &&
          (!unsigned_value(m[field::max], max_safe_integer, unsub.max) || unsub.max == 0)) {
        return failure(error_code::bad_request, "'max' must be a positive integer (at most 2^53-1)",
                       true);
      }
      out.body = unsub;
      return {};
    }
    case op::connect: {
      connect_message connect;
      const member& proto = m[field::proto];
      if (proto.given()) {
        std::uint64_t version = 0;
        if (!unsigned_value(proto, max_safe_integer, version) || version != protocol_version) {
          return failure(error_code::bad_request, "'proto' must be 1: this server speaks v1", true);
        }
      }
      if (!optional_string(m[field::name], name_, connect.name)) {
        return failure(error_code::bad_request, "'name' must be a string", true);
      }
      if (connect.name && connect.name->size() > max_client_name_size) {
        return failure(error_code::bad_request, "'name' must be at most 128 bytes", true);
      }
      if (!optional_string(m[field::token], token_, connect.token)) {
        return failure(error_code::bad_request, "'token' must be a string", true);
      }
      if (!optional_string(m[field::user], user_, connect.user)) {
        return failure(error_code::bad_request, "'user' must be a string", true);
      }
      if (!optional_string(m[field::pass], pass_, connect.pass)) {
        return failure(error_code::bad_request, "'pass' must be a string", true);
      }
      if (connect.user.has_value() != connect.pass.has_value()) {
        return failure(error_code::bad_request, "'user' and 'pass' go together", true);
      }
      const member& echo = m[field::echo];
      if (echo.given()) {
        if (echo.kind != json::kind::boolean) {
          return failure(error_code::bad_request, "'echo' must be true or false", true);
        }
        connect.echo = echo.raw == "true";
      }
      out.body = connect;
      return {};
    }
    case op::ping:
      out.body = ping_message{};
      return {};
    case op::pong:
      out.body = pong_message{};
      return {};
    default:
      break;
  }
  return failure(error_code::unknown_op, "unknown op", true);
}

parse_result server_parser::parse(std::string_view body, server_frame& out) {
  static constexpr std::array<std::pair<std::string_view, op>, 6> ops{{{"msg", op::msg},
                                                                       {"ok", op::ok},
                                                                       {"err", op::err},
                                                                       {"ping", op::ping},
                                                                       {"pong", op::pong},
                                                                       {"info", op::info}}};
  members m;
  if (auto failed = read_head(body, ops, names_, id_, op_, m, out.id, out.kind)) return *failed;

  auto optional_uint = [&](field f, std::uint64_t& value) {
    return !m[f].given() || unsigned_value(m[f], UINT64_MAX, value);
  };

  switch (out.kind) {
    case op::msg: {
      msg_message msg;
      const member& topic = m[field::topic];
      if (!m[field::sid].given() || !unsigned_value(m[field::sid], max_safe_integer, msg.sid)) {
        return failure(error_code::bad_request, "'msg' needs an integer 'sid'", true);
      }
      if (!topic.given() || !is_string(topic)) {
        return failure(error_code::bad_request, "'msg' needs a string 'topic'", true);
      }
      if (!m[field::data].present)
        return failure(error_code::bad_request, "'msg' needs 'data'", true);
      msg.topic = string_value(topic, topic_);
      msg.data = m[field::data].raw;
      if (m[field::reply].given()) {
        if (!is_string(m[field::reply])) {
          return failure(error_code::bad_request, "'reply' must be a string", true);
        }
        msg.reply = string_value(m[field::reply], reply_);
      }
      if (m[field::headers].given()) {
        if (m[field::headers].kind != json::kind::object ||
            !valid_headers(m[field::headers].raw, header_names_)) {
          return failure(error_code::bad_request, "'headers' must map names to strings", true);
        }
        msg.headers = m[field::headers].raw;
      }
      out.body = msg;
      return {};
    }
    case op::err: {
      err_message err;
      std::optional<std::string_view> text;
      if (!m[field::code].given() || !is_string(m[field::code])) {
        return failure(error_code::bad_request, "'err' needs a string 'code'", true);
      }
      err.code = string_value(m[field::code], code_);
      if (!optional_string(m[field::message], message_, text)) {
        return failure(error_code::bad_request, "'message' must be a string", true);
      }
      err.message = text.value_or(std::string_view{});
      if (!optional_string(m[field::topic], topic_, text)) {
        return failure(error_code::bad_request, "'topic' must be a string", true);
      }
      err.topic = text.value_or(std::string_view{});
      out.body = err;
      return {};
    }
    case op::info: {
      info_message info;
      std::optional<std::string_view> text;
      if (!optional_string(m[field::server], server_, text)) {
        return failure(error_code::bad_request, "'server' must be a string", true);
      }
      info.server = text.value_or(std::string_view{});
      if (!optional_string(m[field::version], version_, text)) {
        return failure(error_code::bad_request, "'version' must be a string", true);
      }
      info.version = text.value_or(std::string_view{});
      // info_message::proto is signed: a larger value must not wrap around.
      std::uint64_t proto = 1;
      if ((m[field::proto].given() &&
           !unsigned_value(m[field::proto], static_cast<std::uint64_t>(INT64_MAX), proto)) ||
          !optional_uint(field::max_frame, info.max_frame) ||
          !optional_uint(field::max_pending, info.max_pending) ||
          !optional_uint(field::write_deadline_ms, info.write_deadline_ms) ||
          !optional_uint(field::client_id, info.client_id) ||
          !optional_uint(field::ping_interval_ms, info.ping_interval_ms)) {
        return failure(error_code::bad_request, "'info' has a malformed number", true);
      }
      info.proto = static_cast<std::int64_t>(proto);
      if (m[field::auth_required].given()) {
        if (m[field::auth_required].kind != json::kind::boolean) {
          return failure(error_code::bad_request, "'auth_required' must be a boolean", true);
        }
        info.auth_required = m[field::auth_required].raw == "true";
      }
      out.body = info;
      return {};
    }
    case op::ok:
      out.body = ok_message{};
      return {};
    case op::ping:
      out.body = ping_message{};
      return {};
    case op::pong:
      out.body = pong_message{};
      return {};
    default:
      break;
  }
  return failure(error_code::unknown_op, "unknown op", true);
}

}  // namespace tidings::protocol
