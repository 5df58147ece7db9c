#pragma once

// Parses one frame body into the typed model, reporting the exact error of
// PROTOCOL.md section 8 for malformed input.
//
// One pass over the body validates all of it (strict JSON, depth, repeated top-level
// names) and records where each known member's value lies; the typed fields are then
// read from those spans. Nothing is allocated unless a string has escapes.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "tidings/protocol/errors.hpp"
#include "tidings/protocol/messages.hpp"

namespace tidings::protocol {

struct parse_error {
  error_code code = error_code::bad_json;
  std::string_view message;  // static text, for the `err` frame
  // Whether the frame's `id` was valid and belongs on the `err` answer.
  bool id_valid = false;
};

namespace detail {

// Scratch storage up to this size is kept between frames (a topic is at most 256 bytes);
// more, grown by one unusual frame, is given back by shrink().
inline constexpr std::size_t kept_scratch_capacity = 512;

// Reused between frames so that checking member names for repeats allocates nothing in
// the steady state.
struct name_registry {
  std::vector<std::string_view> names;
  // Names that had escapes, decoded. Each string has its own allocation, so views stay
  // valid as more are added; nothing is allocated for frames without escaped names
  // (a std::deque would allocate ~600 bytes per parser, i.e. per connection, up front).
  std::vector<std::unique_ptr<std::string>> decoded;
  std::size_t decoded_used = 0;
  std::unordered_set<std::string_view> large;  // used once an object has many members

  void clear();
  // False if `name` was already registered since the last clear().
  bool add(std::string_view name);
  std::string_view decode(std::string_view escaped);
  // Gives back storage beyond the steady state; views from earlier frames die.
  void shrink() noexcept;
};

}  // namespace detail

struct parse_result {
  bool ok = true;
  parse_error error;

  explicit operator bool() const noexcept { return ok; }
};

// Parses frames sent by clients (connect, pub, sub, unsub, ping, pong).
//
// On failure, `out.kind` and `out.id` are filled in as far as they could be read. On
// invalid_topic from `sub`, the sid is filled in too, so that a server can give a
// duplicate sid (bad_request) precedence as section 3 orders.
//
// The views in `out` stay valid until the next parse() and while `body` lives.
class client_parser {
 public:
  parse_result parse(std::string_view body, client_frame& out);

  // Gives back what an unusual frame made the scratch storage grow to (long escaped
  // strings, many members), so that an idle connection keeps a small footprint. Views
  // from earlier parses die.
  void shrink() noexcept;

 private:
  detail::name_registry names_;
  detail::name_registry header_names_;
  std::string op_;
  std::string topic_;
  std::string reply_;
  std::string queue_;
  std::string name_;
  std::string token_;
  std::string user_;
  std::string pass_;
  std::string id_;
};

// Parses frames sent by servers (info, msg, ok, err, ping, pong): the client's side.
class server_parser {
 public:
  parse_result parse(std::string_view body, server_frame& out);

 private:
  detail::name_registry names_;
  detail::name_registry header_names_;
  std::string op_;
  std::string topic_;
  std::string reply_;
  std::string server_;
  std::string version_;
  std::string code_;
  std::string message_;
  std::string id_;
};

}  // namespace tidings::protocol
