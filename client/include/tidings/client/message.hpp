#pragma once

// Messages as a subscriber sees them. `data` and `headers` are the publisher's raw JSON
// text, byte for byte (parse them with the JSON library of your choice).

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tidings::client {

// A delivery, valid only during the handler call: the views point into the
// connection's read buffer. Copy what you keep (tidings::client::message does).
struct message_view {
  std::uint64_t sid = 0;
  std::string_view topic;
  std::string_view data;
  std::string_view reply;    // empty: none
  std::string_view headers;  // raw JSON object; empty: none
};

// An owned copy of a delivery (what a request returns).
struct message {
  std::string topic;
  std::string data;
  std::string reply;
  std::string headers;

  message() = default;
  explicit message(const message_view& view)
      : topic(view.topic), data(view.data), reply(view.reply), headers(view.headers) {}
};

// Headers to publish: names are non-empty and not repeated (PROTOCOL.md section 3).
using header_list = std::vector<std::pair<std::string, std::string>>;

struct publish_options {
  std::string_view reply;  // a concrete topic; empty: none
  const header_list* headers = nullptr;
};

struct subscribe_options {
  std::string_view queue;  // empty: a plain subscription
  std::uint64_t max = 0;   // > 0: unsubscribed automatically after this many deliveries
};

}  // namespace tidings::client
