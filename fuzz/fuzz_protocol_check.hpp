#pragma once

// The invariants that fuzz/fuzz_protocol.cpp checks on every input, kept in a header so
// that tests/unit/fuzz_regression_test.cpp replays saved inputs through exactly the same
// code (built with g++, without libFuzzer).
//
// check_input() treats the input as a stream of client-to-server bytes and checks:
//
// - framing: a frame_decoder fed in chunks whose sizes derive from the input, and one fed
//   everything at once, yield the same frames and errors as a trivial reference reading
//   of the length prefixes; frames that lie whole in the input come back as views into
//   it; buffered() counts exactly the bytes of the partial frame;
// - JSON: json::is_valid agrees with nlohmann::json (an independent, well-fuzzed parser)
//   on each body and on the raw input, up to the documented differences below;
// - parsing: client_parser and server_parser report the outcome (success, or the error
//   code and whether the id is carried) that an oracle computes from nlohmann's reading
//   of the same body, and the values they return equal nlohmann's decoded strings and
//   numbers; a parse that succeeds implies json::is_valid(body); forwarded raw values
//   (`data`, `headers`) lie inside the body and are valid JSON themselves;
// - round trips: re-encoding a parsed frame with the encoders and parsing it again gives
//   the same fields.
//
// Known, intended differences from nlohmann::json 3.11 (the oracle allows for them):
// - nlohmann skips a UTF-8 BOM at the start of the input; RFC 8259 and PROTOCOL.md
//   section 1 reject it, and so does json::is_valid.
// - nlohmann has no depth limit; json::is_valid rejects nesting deeper than 128.
// - nlohmann rejects a number that overflows a double (1e400, error 406); the protocol
//   forwards numbers of any size exactly as written.
// - nlohmann takes a NUL byte where a token may start as the end of the input (for C
//   strings), so `{}\0junk` passes; a NUL byte is invalid anywhere in JSON.
// Both reject lone surrogate escapes (I-JSON), overlong UTF-8 and surrogates in UTF-8.
//
// A broken invariant throws invariant_violation; the fuzzer turns it into abort().

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidings/protocol/encoder.hpp"
#include "tidings/protocol/errors.hpp"
#include "tidings/protocol/frame_decoder.hpp"
#include "tidings/protocol/json.hpp"
#include "tidings/protocol/limits.hpp"
#include "tidings/protocol/messages.hpp"
#include "tidings/protocol/parser.hpp"
#include "tidings/protocol/topic.hpp"

namespace tidings::fuzz {

namespace proto = tidings::protocol;

// The frame size limit the fuzzer decodes with (small, so that size errors are reachable).
inline constexpr std::uint32_t fuzz_max_frame = 4096;

struct invariant_violation : std::logic_error {
  using std::logic_error::logic_error;
};

inline void require(bool condition, const char* what) {
  if (!condition) throw invariant_violation(what);
}

// ---------------------------------------------------------------------------------------
// The reference: nlohmann::json's SAX reading of a text.

struct ref_value {
  enum class type : std::uint8_t {
    null,
    boolean,
    integer,
    unsigned_integer,
    floating,
    string,
    object,
    array
  };
  type t = type::null;
  bool b = false;
  std::int64_t i = 0;
  std::uint64_t u = 0;
  std::string s;
};

struct ref_result {
  bool accepted = false;
  int error_id = 0;  // nlohmann's exception id when rejected (406: number overflow)
  int max_depth = 0;
  bool top_is_object = false;
  bool duplicate_top_name = false;  // compared after unescaping
  bool headers_ok = true;           // top-level `headers`: non-empty, unrepeated names to strings
  std::map<std::string, ref_value> top;

  const ref_value* get(const std::string& name) const {
    const auto it = top.find(name);
    return it == top.end() ? nullptr : &it->second;
  }
  // Present and not null (section 1: a null optional field is absent).
  const ref_value* given(const std::string& name) const {
    const ref_value* v = get(name);
    return v != nullptr && v->t != ref_value::type::null ? v : nullptr;
  }
};

class ref_sax {
 public:
  explicit ref_sax(ref_result& out) : out_(out) {}

  bool null() { return value({}); }
  bool boolean(bool v) {
    ref_value r;
    r.t = ref_value::type::boolean;
    r.b = v;
    return value(std::move(r));
  }
  bool number_integer(std::int64_t v) {
    ref_value r;
    r.t = ref_value::type::integer;
    r.i = v;
    return value(std::move(r));
  }
  bool number_unsigned(std::uint64_t v) {
    ref_value r;
    r.t = ref_value::type::unsigned_integer;
    r.u = v;
    return value(std::move(r));
  }
  bool number_float(double, const std::string&) {
    ref_value r;
    r.t = ref_value::type::floating;
    return value(std::move(r));
  }
  bool string(std::string& v) {
    ref_value r;
    r.t = ref_value::type::string;
    r.s = v;
    return value(std::move(r));
  }
  bool binary(nlohmann::json::binary_t&) { return true; }
  bool start_object(std::size_t) {
    if (depth_ == 0) out_.top_is_object = true;
    ref_value r;
    r.t = ref_value::type::object;
    value(std::move(r));
    open();
    return true;
  }
  bool end_object() { return close(); }
  bool start_array(std::size_t) {
    ref_value r;
    r.t = ref_value::type::array;
    value(std::move(r));
    open();
    return true;
  }
  bool end_array() { return close(); }
  bool key(std::string& name) {
    if (depth_ == 1) {
      if (!top_names_.insert(name).second) out_.duplicate_top_name = true;
      top_key_ = name;
      pending_top_key_ = true;
    } else if (depth_ == 2 && in_headers_) {
      if (name.empty() || !header_names_.insert(name).second) out_.headers_ok = false;
      pending_header_key_ = true;
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    out_.error_id = e.id;
    return false;
  }

 private:
  // Called for every value before a container opens (depth_ is the value's level - 1).
  bool value(ref_value v) {
    if (depth_ == 1 && pending_top_key_) {
      pending_top_key_ = false;
      if (top_key_ == "headers" && v.t == ref_value::type::object) {
        in_headers_ = true;
        header_names_.clear();
        out_.headers_ok = true;
      }
      out_.top.insert_or_assign(top_key_, std::move(v));
    } else if (depth_ == 2 && in_headers_ && pending_header_key_) {
      pending_header_key_ = false;
      if (v.t != ref_value::type::string) out_.headers_ok = false;
    }
    return true;
  }
  void open() {
    ++depth_;
    if (depth_ > out_.max_depth) out_.max_depth = depth_;
  }
  bool close() {
    --depth_;
    if (depth_ == 1) in_headers_ = false;
    return true;
  }

  ref_result& out_;
  int depth_ = 0;
  bool pending_top_key_ = false;
  std::string top_key_;
  std::set<std::string> top_names_;
  bool in_headers_ = false;
  bool pending_header_key_ = false;
  std::set<std::string> header_names_;
};

inline ref_result reference_parse(std::string_view text) {
  ref_result r;
  ref_sax sax(r);
  r.accepted = nlohmann::json::sax_parse(text.begin(), text.end(), &sax);
  if (!r.accepted) {
    r.top.clear();
    r.top_is_object = false;
  }
  return r;
}

inline bool starts_with_bom(std::string_view text) {
  return text.starts_with("\xEF\xBB\xBF");
}

// json::is_valid against nlohmann, with the documented differences.
inline void cross_check_json(std::string_view text, bool ours, const ref_result& ref) {
  if (text.find('\0') != std::string_view::npos) {
    require(!ours, "json::is_valid accepts a NUL byte");
    return;
  }
  if (ours) {
    require(ref.accepted || ref.error_id == 406,
            "json::is_valid accepts a text that nlohmann rejects (not a number overflow)");
    if (ref.accepted)
      require(ref.max_depth <= proto::max_json_depth, "is_valid accepts depth > 128");
    return;
  }
  if (!ref.accepted) return;
  if (starts_with_bom(text)) {
    // nlohmann skipped the BOM: the rest must be judged alike.
    const std::string_view rest = text.substr(3);
    cross_check_json(rest, proto::json::is_valid(rest), reference_parse(rest));
    return;
  }
  require(ref.max_depth > proto::max_json_depth,
          "json::is_valid rejects a text that nlohmann accepts (not too deep, no BOM)");
}

// ---------------------------------------------------------------------------------------
// The oracle: the outcome PROTOCOL.md sections 1, 3 and 8 prescribe for a body that both
// json::is_valid and nlohmann accept.

struct outcome {
  bool ok = true;
  proto::error_code code = proto::error_code::bad_json;
  bool id_valid = false;  // on failure: whether the err carries the id
};

inline outcome fail(proto::error_code code, bool id_valid) {
  return {false, code, id_valid};
}

inline bool is_type(const ref_value* v, ref_value::type t) {
  return v != nullptr && v->t == t;
}

// A positive integer written as such (no sign, fraction or exponent), at most `limit`.
inline bool ref_unsigned(const ref_value* v, std::uint64_t min, std::uint64_t limit) {
  return is_type(v, ref_value::type::unsigned_integer) && v->u >= min && v->u <= limit;
}

inline bool ref_id_ok(const ref_result& ref) {
  const ref_value* id = ref.given("id");
  if (id == nullptr) return true;
  const auto max = static_cast<std::int64_t>(proto::max_safe_integer);
  switch (id->t) {
    case ref_value::type::string:
      return id->s.size() <= proto::max_string_id_size;
    case ref_value::type::unsigned_integer:
      return id->u <= proto::max_safe_integer;
    case ref_value::type::integer:
      return id->i >= -max && id->i <= max;
    default:
      return false;
  }
}

// The common head: object, no repeats, string op, known op, valid id.
inline std::optional<outcome> common_outcome(const ref_result& ref,
                                             const std::set<std::string>& ops) {
  using proto::error_code;
  if (!ref.top_is_object || ref.duplicate_top_name) return fail(error_code::bad_json, false);
  const bool id_ok = ref_id_ok(ref);
  const ref_value* op = ref.get("op");
  if (!is_type(op, ref_value::type::string)) return fail(error_code::bad_json, id_ok);
  if (ops.count(op->s) == 0) return fail(error_code::unknown_op, id_ok);
  if (!id_ok) return fail(error_code::bad_request, false);
  return std::nullopt;
}

inline outcome expected_client(const ref_result& ref) {
  using proto::error_code;
  using T = ref_value::type;
  static const std::set<std::string> ops{"connect", "pub", "sub", "unsub", "ping", "pong"};
  if (auto head = common_outcome(ref, ops)) return *head;
  const std::string& op = ref.top.at("op").s;
  const auto bad_request = fail(error_code::bad_request, true);
  const auto invalid_topic = fail(error_code::invalid_topic, true);
  const auto optional_string = [&](const char* name) {
    const ref_value* v = ref.given(name);
    return v == nullptr || v->t == T::string;
  };
  const auto sid_ok = [&] { return ref_unsigned(ref.given("sid"), 1, proto::max_safe_integer); };
  if (op == "pub") {
    const ref_value* topic = ref.given("topic");
    const ref_value* reply = ref.given("reply");
    const ref_value* headers = ref.given("headers");
    if (!is_type(topic, T::string)) return bad_request;
    if (ref.get("data") == nullptr) return bad_request;
    if (!optional_string("reply")) return bad_request;
    if (headers != nullptr && (headers->t != T::object || !ref.headers_ok)) return bad_request;
    if (!proto::is_valid_topic(topic->s)) return invalid_topic;
    if (reply != nullptr && !proto::is_valid_topic(reply->s)) return invalid_topic;
    return {};
  }
  if (op == "sub") {
    const ref_value* topic = ref.given("topic");
    const ref_value* queue = ref.given("queue");
    if (!sid_ok()) return bad_request;
    if (!is_type(topic, T::string)) return bad_request;
    if (queue != nullptr && (queue->t != T::string || !proto::is_valid_queue_name(queue->s))) {
      return bad_request;
    }
    if (!proto::is_valid_pattern(topic->s)) return invalid_topic;
    return {};
  }
  if (op == "unsub") {
    if (!sid_ok()) return bad_request;
    const ref_value* max = ref.given("max");
    if (max != nullptr && !ref_unsigned(max, 1, proto::max_safe_integer)) return bad_request;
    return {};
  }
  if (op == "connect") {
    const ref_value* version = ref.given("proto");
    if (version != nullptr && !ref_unsigned(version, 1, 1)) return bad_request;
    for (const char* name : {"name", "token", "user", "pass"}) {
      if (!optional_string(name)) return bad_request;
    }
    if ((ref.given("user") == nullptr) != (ref.given("pass") == nullptr)) return bad_request;
    const ref_value* echo = ref.given("echo");
    if (echo != nullptr && echo->t != T::boolean) return bad_request;
    return {};
  }
  return {};  // ping, pong
}

inline outcome expected_server(const ref_result& ref) {
  using proto::error_code;
  using T = ref_value::type;
  static const std::set<std::string> ops{"info", "msg", "ok", "err", "ping", "pong"};
  if (auto head = common_outcome(ref, ops)) return *head;
  const std::string& op = ref.top.at("op").s;
  const auto bad_request = fail(error_code::bad_request, true);
  const auto optional_string = [&](const char* name) {
    const ref_value* v = ref.given(name);
    return v == nullptr || v->t == T::string;
  };
  if (op == "msg") {
    // A client is lenient about what the server sends: sid 0 passes.
    if (!ref_unsigned(ref.given("sid"), 0, proto::max_safe_integer)) return bad_request;
    if (!is_type(ref.given("topic"), T::string)) return bad_request;
    if (ref.get("data") == nullptr) return bad_request;
    if (!optional_string("reply")) return bad_request;
    const ref_value* headers = ref.given("headers");
    if (headers != nullptr && (headers->t != T::object || !ref.headers_ok)) return bad_request;
    return {};
  }
  if (op == "err") {
    if (!is_type(ref.given("code"), T::string)) return bad_request;
    if (!optional_string("message") || !optional_string("topic")) return bad_request;
    return {};
  }
  if (op == "info") {
    if (!optional_string("server") || !optional_string("version")) return bad_request;
    const ref_value* version = ref.given("proto");
    // info_message::proto is signed: a larger value has no faithful reading.
    if (version != nullptr && !ref_unsigned(version, 0, INT64_MAX)) {
      return bad_request;
    }
    for (const char* name :
         {"max_frame", "max_pending", "write_deadline_ms", "client_id", "ping_interval_ms"}) {
      const ref_value* v = ref.given(name);
      if (v != nullptr && !ref_unsigned(v, 0, UINT64_MAX)) return bad_request;
    }
    const ref_value* auth = ref.given("auth_required");
    if (auth != nullptr && auth->t != T::boolean) return bad_request;
    return {};
  }
  return {};  // ok, ping, pong
}

// ---------------------------------------------------------------------------------------
// Checks on parse results.

inline bool lies_inside(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

inline void require_string(std::string_view ours, const ref_result& ref, const char* name,
                           const char* what) {
  const ref_value* v = ref.given(name);
  if (v == nullptr) {
    require(ours.empty(), what);
  } else {
    require(v->t == ref_value::type::string && ours == v->s, what);
  }
}

inline void require_optional(const std::optional<std::string_view>& ours, const ref_result& ref,
                             const char* name, const char* what) {
  const ref_value* v = ref.given(name);
  require(ours.has_value() == (v != nullptr), what);
  if (v != nullptr) require(*ours == v->s, what);
}

inline void require_id(const proto::request_id& id, const ref_result& ref) {
  const ref_value* v = ref.given("id");
  if (v == nullptr) {
    require(!id.present(), "id present although the frame has none");
    return;
  }
  require(id.present(), "valid id not reported");
  if (v->t == ref_value::type::string) {
    require(id.type == proto::request_id::kind::string && id.text == v->s, "string id differs");
    require(id.raw.size() >= 2 && id.raw.front() == '"' && id.raw.back() == '"', "raw id");
  } else {
    const std::int64_t expected =
        v->t == ref_value::type::integer ? v->i : static_cast<std::int64_t>(v->u);
    require(id.type == proto::request_id::kind::integer && id.integer == expected,
            "integer id differs");
  }
  require(proto::json::is_valid(id.raw), "raw id is not a JSON value");
}

// A forwarded raw value: a view into the body that is valid JSON at the depth it had.
inline void require_raw(std::string_view raw, std::string_view body, const char* what) {
  require(!raw.empty() && lies_inside(raw, body), what);
  require(proto::json::is_valid(raw, proto::max_json_depth - 1), what);
}

// Decodes the single frame in `bytes` and parses it.
template <typename Parser, typename Frame>
proto::parse_result reparse(const std::string& bytes, Parser& parser, Frame& frame) {
  require(bytes.size() >= proto::frame_prefix_size, "encoder wrote no prefix");
  const auto length =
      proto::load_frame_length(reinterpret_cast<const unsigned char*>(bytes.data()));
  require(length == bytes.size() - proto::frame_prefix_size, "length prefix != body size");
  proto::frame_decoder decoder(UINT32_MAX);
  const auto r = decoder.next(bytes);
  require(r.state == proto::frame_decoder::status::frame && r.consumed == bytes.size(),
          "encoded frame does not decode");
  return parser.parse(r.body, frame);
}

inline void require_same_id(const proto::request_id& a, const proto::request_id& b) {
  require(a.type == b.type && a.integer == b.integer && a.text == b.text && a.raw == b.raw,
          "id changed in a round trip");
}

inline void round_trip_client(const proto::client_frame& frame) {
  std::string bytes;
  proto::client_parser parser;
  proto::client_frame again;
  switch (frame.kind) {
    case proto::op::pub: {
      // Copies: `frame` holds views into the first parser's storage, not this one's.
      const auto& pub = std::get<proto::pub_message>(frame.body);
      proto::encode_pub(bytes, pub, frame.id.raw);
      require(reparse(bytes, parser, again).ok && again.kind == proto::op::pub, "pub round trip");
      const auto& p = std::get<proto::pub_message>(again.body);
      require(p.topic == pub.topic && p.data == pub.data && p.reply == pub.reply &&
                  p.headers == pub.headers,
              "pub fields changed in a round trip");
      break;
    }
    case proto::op::sub: {
      const auto& sub = std::get<proto::sub_message>(frame.body);
      proto::encode_sub(bytes, sub, frame.id.raw);
      require(reparse(bytes, parser, again).ok && again.kind == proto::op::sub, "sub round trip");
      const auto& s = std::get<proto::sub_message>(again.body);
      require(s.sid == sub.sid && s.topic == sub.topic && s.queue == sub.queue,
              "sub fields changed in a round trip");
      break;
    }
    case proto::op::unsub: {
      const auto& unsub = std::get<proto::unsub_message>(frame.body);
      proto::encode_unsub(bytes, unsub, frame.id.raw);
      require(reparse(bytes, parser, again).ok && again.kind == proto::op::unsub,
              "unsub round trip");
      const auto& u = std::get<proto::unsub_message>(again.body);
      require(u.sid == unsub.sid && u.max == unsub.max, "unsub fields changed in a round trip");
      break;
    }
    case proto::op::connect: {
      const auto& connect = std::get<proto::connect_message>(frame.body);
      proto::encode_connect(bytes, connect, frame.id.raw);
      require(reparse(bytes, parser, again).ok && again.kind == proto::op::connect,
              "connect round trip");
      const auto& c = std::get<proto::connect_message>(again.body);
      require(c.proto == connect.proto && c.name == connect.name && c.token == connect.token &&
                  c.user == connect.user && c.pass == connect.pass && c.echo == connect.echo,
              "connect fields changed in a round trip");
      break;
    }
    case proto::op::ping:
      proto::encode_ping(bytes, frame.id.raw);
      require(reparse(bytes, parser, again).ok && again.kind == proto::op::ping, "ping round trip");
      break;
    case proto::op::pong:
      proto::encode_pong(bytes, frame.id.raw);
      require(reparse(bytes, parser, again).ok && again.kind == proto::op::pong, "pong round trip");
      break;
    default:
      require(false, "client frame of a server op");
  }
  require_same_id(frame.id, again.id);
}

inline void round_trip_server(const proto::server_frame& frame) {
  std::string bytes;
  proto::server_parser parser;
  proto::server_frame again;
  switch (frame.kind) {
    case proto::op::msg: {
      const auto& msg = std::get<proto::msg_message>(frame.body);
      proto::encode_msg(bytes, msg);
      require(reparse(bytes, parser, again).ok && again.kind == proto::op::msg, "msg round trip");
      const auto& m = std::get<proto::msg_message>(again.body);
      require(m.sid == msg.sid && m.topic == msg.topic && m.data == msg.data &&
                  m.reply == msg.reply && m.headers == msg.headers,
              "msg fields changed in a round trip");
      // The fan-out form is the same bytes.
      std::string body;
      proto::encode_msg_body(body, msg.topic, msg.data, msg.reply, msg.headers);
      const proto::msg_prefix prefix(msg.sid, body.size());
      require(std::string(prefix.view()) + body == bytes, "msg_prefix + body != encode_msg");
      char raw_prefix[proto::msg_prefix::capacity];
      const std::size_t written = proto::write_msg_prefix(raw_prefix, msg.sid, body.size());
      require(std::string_view(raw_prefix, written) == prefix.view() &&
                  proto::msg_prefix_size(msg.sid) == written,
              "write_msg_prefix differs from msg_prefix");
      return;  // msg frames carry no id
    }
    case proto::op::err: {
      const auto& err = std::get<proto::err_message>(frame.body);
      const auto code = proto::error_code_from_wire(err.code);
      if (!code) return;  // a code this version does not know cannot be encoded
      proto::encode_err(bytes, *code, err.message, frame.id.raw, err.topic);
      require(reparse(bytes, parser, again).ok && again.kind == proto::op::err, "err round trip");
      const auto& e = std::get<proto::err_message>(again.body);
      require(e.code == err.code && e.message == err.message && e.topic == err.topic,
              "err fields changed in a round trip");
      break;
    }
    case proto::op::info: {
      const auto& info = std::get<proto::info_message>(frame.body);
      proto::encode_info(bytes, info);
      require(reparse(bytes, parser, again).ok && again.kind == proto::op::info, "info round trip");
      const auto& i = std::get<proto::info_message>(again.body);
      require(i.server == info.server && i.version == info.version && i.proto == info.proto &&
                  i.max_frame == info.max_frame && i.max_pending == info.max_pending &&
                  i.write_deadline_ms == info.write_deadline_ms &&
                  i.auth_required == info.auth_required && i.client_id == info.client_id &&
                  i.ping_interval_ms == info.ping_interval_ms,
              "info fields changed in a round trip");
      return;  // info frames carry no id
    }
    case proto::op::ok:
      proto::encode_ok(bytes, frame.id.raw);
      require(reparse(bytes, parser, again).ok && again.kind == proto::op::ok, "ok round trip");
      break;
    case proto::op::ping:
      proto::encode_ping(bytes, frame.id.raw);
      require(reparse(bytes, parser, again).ok && again.kind == proto::op::ping, "ping round trip");
      break;
    case proto::op::pong:
      proto::encode_pong(bytes, frame.id.raw);
      require(reparse(bytes, parser, again).ok && again.kind == proto::op::pong, "pong round trip");
      break;
    default:
      require(false, "server frame of a client op");
  }
  require_same_id(frame.id, again.id);
}

inline void require_outcome(const proto::parse_result& result, const outcome& expected,
                            const char* what) {
  require(result.ok == expected.ok, what);
  if (!expected.ok) {
    require(result.error.code == expected.code, what);
    require(result.error.id_valid == expected.id_valid, what);
  }
}

inline void check_client_fields(const proto::client_frame& frame, std::string_view body,
                                const ref_result& ref) {
  require_id(frame.id, ref);
  switch (frame.kind) {
    case proto::op::pub: {
      const auto& pub = std::get<proto::pub_message>(frame.body);
      require_string(pub.topic, ref, "topic", "pub.topic differs from nlohmann's");
      require_string(pub.reply, ref, "reply", "pub.reply differs from nlohmann's");
      require_raw(pub.data, body, "pub.data is not a valid view into the body");
      if (ref.given("headers") != nullptr) {
        require_raw(pub.headers, body, "pub.headers is not a valid view into the body");
        require(pub.headers.front() == '{', "pub.headers is not an object");
      } else {
        require(pub.headers.empty(), "pub.headers set although absent");
      }
      break;
    }
    case proto::op::sub: {
      const auto& sub = std::get<proto::sub_message>(frame.body);
      require(sub.sid == ref.given("sid")->u, "sub.sid differs");
      require_string(sub.topic, ref, "topic", "sub.topic differs from nlohmann's");
      require_string(sub.queue, ref, "queue", "sub.queue differs from nlohmann's");
      break;
    }
    case proto::op::unsub: {
      const auto& unsub = std::get<proto::unsub_message>(frame.body);
      require(unsub.sid == ref.given("sid")->u, "unsub.sid differs");
      const ref_value* max = ref.given("max");
      require(unsub.max == (max == nullptr ? 0 : max->u), "unsub.max differs");
      break;
    }
    case proto::op::connect: {
      const auto& connect = std::get<proto::connect_message>(frame.body);
      require(connect.proto == 1, "connect.proto");
      require_optional(connect.name, ref, "name", "connect.name differs");
      require_optional(connect.token, ref, "token", "connect.token differs");
      require_optional(connect.user, ref, "user", "connect.user differs");
      require_optional(connect.pass, ref, "pass", "connect.pass differs");
      const ref_value* echo = ref.given("echo");
      require(connect.echo == (echo == nullptr || echo->b), "connect.echo differs");
      break;
    }
    default:
      break;
  }
}

inline void check_server_fields(const proto::server_frame& frame, std::string_view body,
                                const ref_result& ref) {
  require_id(frame.id, ref);
  switch (frame.kind) {
    case proto::op::msg: {
      const auto& msg = std::get<proto::msg_message>(frame.body);
      require(msg.sid == ref.given("sid")->u, "msg.sid differs");
      require_string(msg.topic, ref, "topic", "msg.topic differs from nlohmann's");
      require_string(msg.reply, ref, "reply", "msg.reply differs from nlohmann's");
      require_raw(msg.data, body, "msg.data is not a valid view into the body");
      if (ref.given("headers") != nullptr) {
        require_raw(msg.headers, body, "msg.headers is not a valid view into the body");
      }
      break;
    }
    case proto::op::err: {
      const auto& err = std::get<proto::err_message>(frame.body);
      require_string(err.code, ref, "code", "err.code differs");
      require_string(err.message, ref, "message", "err.message differs");
      require_string(err.topic, ref, "topic", "err.topic differs");
      break;
    }
    case proto::op::info: {
      const auto& info = std::get<proto::info_message>(frame.body);
      require_string(info.server, ref, "server", "info.server differs");
      require_string(info.version, ref, "version", "info.version differs");
      const ref_value* version = ref.given("proto");
      require(info.proto == (version == nullptr ? 1 : static_cast<std::int64_t>(version->u)),
              "info.proto differs");
      const auto number = [&](const char* name) {
        const ref_value* v = ref.given(name);
        return v == nullptr ? std::uint64_t{0} : v->u;
      };
      require(info.max_frame == number("max_frame") && info.max_pending == number("max_pending") &&
                  info.write_deadline_ms == number("write_deadline_ms") &&
                  info.client_id == number("client_id") &&
                  info.ping_interval_ms == number("ping_interval_ms"),
              "info numbers differ");
      const ref_value* auth = ref.given("auth_required");
      require(info.auth_required == (auth != nullptr && auth->b), "info.auth_required differs");
      break;
    }
    default:
      break;
  }
}

// One frame body through both parsers.
struct parsers {
  proto::client_parser client;
  proto::server_parser server;
};

inline void check_body(std::string_view body, parsers& p) {
  const bool valid = proto::json::is_valid(body);
  const ref_result ref = reference_parse(body);
  cross_check_json(body, valid, ref);

  proto::client_frame client_frame;
  const auto client = p.client.parse(body, client_frame);
  proto::server_frame server_frame;
  const auto server = p.server.parse(body, server_frame);

  if (!valid) {
    // Section 1: invalid JSON is bad_json, answered without id.
    for (const auto* r : {&client, &server}) {
      require(!r->ok && r->error.code == proto::error_code::bad_json && !r->error.id_valid,
              "invalid JSON not reported as bad_json without id");
    }
    require(!client_frame.id.present() && !server_frame.id.present(), "id read from invalid JSON");
    return;
  }
  // A body that json::is_valid accepts but nlohmann rejects (a number overflowing a double)
  // has no reference reading; only the weaker invariants below apply.
  if (ref.accepted) {
    require_outcome(client, expected_client(ref), "client_parser outcome differs from the oracle");
    require_outcome(server, expected_server(ref), "server_parser outcome differs from the oracle");
    if (client.ok) check_client_fields(client_frame, body, ref);
    if (server.ok) check_server_fields(server_frame, body, ref);
    if (!client.ok && client.error.code == proto::error_code::invalid_topic &&
        client_frame.kind == proto::op::sub) {
      // The sid is filled in, so that a duplicate sid can take precedence.
      require(std::get<proto::sub_message>(client_frame.body).sid == ref.given("sid")->u,
              "sub sid not filled in on invalid_topic");
    }
  }
  if (client.ok) round_trip_client(client_frame);
  if (server.ok) round_trip_server(server_frame);
}

// ---------------------------------------------------------------------------------------
// Framing.

struct frame_event {
  bool error = false;
  proto::error_code code = proto::error_code::bad_frame;
  std::uint32_t length = 0;
  std::string body;
};

// The frames and the first error, read from the length prefixes the obvious way.
inline std::vector<frame_event> reference_frames(std::string_view stream, std::uint32_t max) {
  std::vector<frame_event> events;
  while (stream.size() >= proto::frame_prefix_size) {
    const auto length =
        proto::load_frame_length(reinterpret_cast<const unsigned char*>(stream.data()));
    if (length < proto::min_frame_size || length > max) {
      frame_event e;
      e.error = true;
      e.code = length < proto::min_frame_size ? proto::error_code::bad_frame
                                              : proto::error_code::frame_too_large;
      e.length = length;
      events.push_back(std::move(e));
      break;
    }
    if (stream.size() - proto::frame_prefix_size < length) break;
    frame_event e;
    e.body = std::string(stream.substr(proto::frame_prefix_size, length));
    events.push_back(std::move(e));
    stream.remove_prefix(proto::frame_prefix_size + length);
  }
  return events;
}

// Feeds `stream` to a decoder in the chunks `sizes` yields; checks the decoder's own
// contract on the way and returns what it produced.
template <typename ChunkSizes>
std::vector<frame_event> decode_in_chunks(std::string_view stream, std::uint32_t max,
                                          ChunkSizes next_size) {
  std::vector<frame_event> events;
  proto::frame_decoder decoder(max);
  std::size_t since_frame = 0;  // bytes consumed since the last frame ended
  while (!stream.empty()) {
    std::string_view chunk = stream.substr(0, std::min(next_size(), stream.size()));
    stream.remove_prefix(chunk.size());
    for (;;) {
      const std::string_view input = chunk;
      const auto r = decoder.next(input);
      require(r.consumed <= input.size(), "decoder consumed more than it was given");
      since_frame += r.consumed;
      chunk.remove_prefix(r.consumed);
      if (r.state == proto::frame_decoder::status::error) {
        require(decoder.failed(), "decoder not failed after an error");
        frame_event e;
        e.error = true;
        e.code = r.error;
        e.length = r.length;
        events.push_back(std::move(e));
        const auto again = decoder.next("xx");
        require(again.state == proto::frame_decoder::status::error && again.consumed == 0,
                "failed decoder accepted more input");
        return events;
      }
      if (r.state == proto::frame_decoder::status::need_more) {
        require(chunk.empty(), "need_more without consuming all the input");
        require(decoder.buffered() == since_frame, "buffered() differs from the bytes held");
        break;
      }
      require(since_frame == proto::frame_prefix_size + r.body.size(),
              "frame consumed a different number of bytes than its size");
      require(decoder.buffered() == 0, "buffered() not 0 after a frame");
      const bool whole_in_input = r.consumed == proto::frame_prefix_size + r.body.size();
      if (whole_in_input) {
        // Zero-copy: the body is a view into the input.
        require(r.body.data() == input.data() + proto::frame_prefix_size,
                "whole frame was copied instead of viewed");
      }
      since_frame = 0;
      frame_event e;
      e.body = std::string(r.body);
      events.push_back(std::move(e));
    }
  }
  return events;
}

inline void require_same_events(const std::vector<frame_event>& a,
                                const std::vector<frame_event>& b, const char* what) {
  require(a.size() == b.size(), what);
  for (std::size_t i = 0; i < a.size(); ++i) {
    require(a[i].error == b[i].error && a[i].body == b[i].body, what);
    if (a[i].error) require(a[i].code == b[i].code && a[i].length == b[i].length, what);
  }
}

// The fuzzer's entry point and the regression test's.
inline void check_input(std::string_view data) {
  // JSON alone: the raw input is a JSON text as often as it is a stream of frames.
  {
    const bool ours = proto::json::is_valid(data);
    cross_check_json(data, ours, reference_parse(data));
  }

  const auto expected = reference_frames(data, fuzz_max_frame);

  // Chunk sizes derive from the last byte, so that the frames start at offset 0.
  const std::uint32_t seed = data.empty() ? 0 : static_cast<unsigned char>(data.back());
  std::uint32_t state = seed * 2654435761U + static_cast<std::uint32_t>(data.size());
  const std::size_t spread = (seed & 0x80U) != 0 ? 7 : 300;
  const auto chunked = decode_in_chunks(data, fuzz_max_frame, [&]() -> std::size_t {
    state = state * 1664525U + 1013904223U;
    return 1 + (state >> 16) % spread;
  });
  require_same_events(expected, chunked, "chunked decoding differs from the reference framing");
  const auto whole = decode_in_chunks(data, fuzz_max_frame, [] { return SIZE_MAX; });
  require_same_events(expected, whole, "whole-input decoding differs from the reference framing");

  parsers p;
  for (const auto& e : expected) {
    if (!e.error) check_body(e.body, p);
  }
}

}  // namespace tidings::fuzz
