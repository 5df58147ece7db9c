#pragma once

// The typed model of every frame of PROTOCOL.md sections 3 and 4.
//
// Strings are views: into the frame body when the JSON string had no escapes, else into
// storage owned by the parser that produced them. Values that are forwarded (`data`,
// `headers`) are views of their raw JSON text, exactly as the sender wrote them.

#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

namespace tidings::protocol {

enum class op : std::uint8_t { connect, pub, sub, unsub, ping, pong, info, msg, ok, err };

std::string_view op_name(op value) noexcept;

// A frame's `id`: an integer within +-(2^53-1) or a string of at most 64 bytes.
struct request_id {
  enum class kind : std::uint8_t { none, integer, string };
  kind type = kind::none;
  std::int64_t integer = 0;
  std::string_view text;  // decoded, for string ids
  std::string_view raw;   // the JSON token as written; echoed back verbatim

  bool present() const noexcept { return type != kind::none; }
};

// Client to server.

struct connect_message {
  std::int64_t proto = 1;
  std::optional<std::string_view> name;
  std::optional<std::string_view> token;
  std::optional<std::string_view> user;
  std::optional<std::string_view> pass;
  bool echo = true;
};

struct pub_message {
  std::string_view topic;
  std::string_view data;     // raw JSON value
  std::string_view reply;    // empty: none
  std::string_view headers;  // raw JSON object; empty: none
};

struct sub_message {
  std::uint64_t sid = 0;
  std::string_view topic;  // a pattern
  std::string_view queue;  // empty: a plain subscription
};

struct unsub_message {
  std::uint64_t sid = 0;
  std::uint64_t max = 0;  // 0: unsubscribe now
};

struct ping_message {};
struct pong_message {};

// Server to client.

struct info_message {
  std::string_view server;
  std::string_view version;
  std::int64_t proto = 1;
  std::uint64_t max_frame = 0;
  std::uint64_t max_pending = 0;
  std::uint64_t write_deadline_ms = 0;
  bool auth_required = false;
  std::uint64_t client_id = 0;
  std::uint64_t ping_interval_ms = 0;
};

struct msg_message {
  std::uint64_t sid = 0;
  std::string_view topic;
  std::string_view data;     // raw JSON value
  std::string_view reply;    // empty: none
  std::string_view headers;  // raw JSON object; empty: none
};

struct ok_message {};

struct err_message {
  std::string_view code;  // the wire name; may be one this version does not know
  std::string_view message;
  std::string_view topic;  // for no_responders: the reply topic
};

using client_body = std::variant<connect_message, pub_message, sub_message, unsub_message,
                                 ping_message, pong_message>;
using server_body =
    std::variant<info_message, msg_message, ok_message, err_message, ping_message, pong_message>;

struct client_frame {
  op kind = op::ping;
  request_id id;
  client_body body;
};

struct server_frame {
  op kind = op::ping;
  request_id id;
  server_body body;
};

}  // namespace tidings::protocol
