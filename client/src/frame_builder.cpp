#include "tidings/client/detail/frame_builder.hpp"

#include <unordered_set>

#include "tidings/protocol/encoder.hpp"
#include "tidings/protocol/json.hpp"
#include "tidings/protocol/limits.hpp"
#include "tidings/protocol/messages.hpp"
#include "tidings/protocol/topic.hpp"

namespace tidings::client::detail {

namespace {

error local_error(protocol::error_code code, std::string message) {
  return {make_error_code(code), std::move(message)};
}

}  // namespace

std::string id_text(std::int64_t id) {
  std::string text;
  protocol::append_integer(text, id);
  return text;
}

error encode_headers(const header_list& list, std::string& out) {
  std::unordered_set<std::string_view> seen;
  // clear() then append, not `out = "{"`: g++ 12 at -O3 reports a false -Wrestrict
  // (GCC bug 105651) on assigning a literal to a string.
  out.clear();
  out += '{';
  for (const auto& [name, value] : list) {
    if (name.empty())
      return local_error(protocol::error_code::bad_request, "a header name is empty");
    if (!seen.insert(name).second) {
      return local_error(protocol::error_code::bad_request, "header '" + name + "' is repeated");
    }
    if (out.size() > 1) out += ',';
    protocol::json::append_string(out, name);
    out += ':';
    protocol::json::append_string(out, value);
  }
  out += '}';
  return {};
}

error check_publish(std::string_view topic, std::string_view data, const publish_options& extra,
                    std::string& headers_json) {
  headers_json.clear();
  if (!protocol::is_valid_topic(topic)) {
    return local_error(protocol::error_code::invalid_topic,
                       "not a valid topic: '" + std::string(topic) + "'");
  }
  if (protocol::is_reserved_topic(topic)) {
    return local_error(protocol::error_code::permission_denied,
                       "topics starting with $ are reserved");
  }
  if (!extra.reply.empty() && !protocol::is_valid_topic(extra.reply)) {
    return local_error(protocol::error_code::invalid_topic,
                       "not a valid reply topic: '" + std::string(extra.reply) + "'");
  }
  // The frame's own object is level 1, so data may nest one level less.
  if (!protocol::json::is_valid(data, protocol::max_json_depth - 1)) {
    return local_error(protocol::error_code::bad_json, "data is not a valid JSON value");
  }
  if (extra.headers != nullptr) return encode_headers(*extra.headers, headers_json);
  return {};
}

error append_pub(std::string& out, std::string_view topic, std::string_view data,
                 std::string_view reply, std::string_view headers_json, std::int64_t id,
                 std::uint64_t max_frame) {
  const std::size_t start = out.size();
  protocol::pub_message pub{topic, data, reply, headers_json};
  protocol::encode_pub(out, pub, id != 0 ? id_text(id) : std::string{});
  // Encoding first and measuring after costs nothing on the common path; a refused frame
  // is cut off again.
  const std::size_t body_size = out.size() - start - protocol::frame_prefix_size;
  if (body_size > max_frame) {
    out.resize(start);
    return local_error(protocol::error_code::frame_too_large,
                       "the frame would be " + std::to_string(body_size) +
                           " bytes; the server accepts " + std::to_string(max_frame));
  }
  return {};
}

error check_subscription(std::string_view pattern, const message_handler& handler,
                         const subscribe_options& extra) {
  if (!protocol::is_valid_pattern(pattern)) {
    return local_error(protocol::error_code::invalid_topic,
                       "not a valid pattern: '" + std::string(pattern) + "'");
  }
  if (!extra.queue.empty() && !protocol::is_valid_queue_name(extra.queue)) {
    return local_error(protocol::error_code::bad_request,
                       "not a valid queue name: '" + std::string(extra.queue) + "'");
  }
  if (!handler) {
    return {make_error_code(errc::invalid_argument), "the message handler is empty"};
  }
  if (extra.max > protocol::max_safe_integer) {
    return local_error(protocol::error_code::bad_request, "max is above 2^53-1");
  }
  return {};
}

}  // namespace tidings::client::detail
