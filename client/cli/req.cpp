// tidings req: one request, one reply.

#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "tidings/client/blocking_client.hpp"
#include "tidings/protocol/topic.hpp"

namespace tidings::cli {
namespace {

class req_command final : public command {
 public:
  explicit req_command(CLI::App& app) {
    subcommand_ = app.add_subcommand("req", "Send a request and print the reply");
    details_ =
        "Sends DATA, a JSON value, to TOPIC with a reply topic and prints the first reply as\n"
        "one line of JSON (like sub). Exits 4 at once when nobody is subscribed to TOPIC, 3\n"
        "when no reply comes within --timeout.\n"
        "Example:\n"
        "  tidings req time.now null --timeout 1s";
    auto& c = *subcommand_;
    c.add_option("TOPIC", topic_, "Topic to send the request to")->required();
    c.add_option("DATA", data_, "The request: one JSON value (a string needs quotes: '\"hi\"')")
        ->required();
    c.add_option("-t,--timeout", timeout_text_, "Longest wait for the reply [5s]")
        ->option_text("DURATION");
    c.add_option("-H,--header", headers_, "A header NAME=VALUE; repeat for more")
        ->option_text("NAME=VALUE")
        ->allow_extra_args(false);
    c.add_flag("--raw", raw_, "Print only the data of the reply");
    flags_.add_to(c);
  }

  int run() override {
    if (!protocol::is_valid_topic(topic_)) {
      throw usage_error("TOPIC '" + topic_ + "' is not a valid concrete topic (no '*' or '>')");
    }
    if (const auto problem = json_problem(data_)) throw usage_error("DATA: " + *problem);
    const auto headers = parse_headers(headers_);
    const auto timeout = parse_duration(timeout_text_, "--timeout");

    auto target = flags_.resolve("req");
    target.options.connect_timeout = timeout;
    std::optional<client::blocking_client> client;
    try {
      client.emplace(std::move(target.options));
    } catch (const client::exception& e) {
      throw connect_failure(target.address, e.code(), e.server_message());
    }

    client::message reply;
    try {
      reply = client->request(topic_, data_, timeout, headers.empty() ? nullptr : &headers);
    } catch (const client::exception& e) {
      const int code = exit_code_for(e.code());
      if (code == exit_no_responders) {
        throw failure(code, "no responders for " + topic_ + " on " + target.address);
      }
      if (code == exit_timeout) {
        throw failure(code, "no reply on " + topic_ + " within " + timeout_text_ + " (server " +
                                target.address + ")");
      }
      throw failure(code,
                    "request to " + topic_ + " on " + target.address + " failed: " + describe(e));
    }
    const client::message_view view{0, reply.topic, reply.data, reply.reply, reply.headers};
    write_line(raw_ ? format_raw_line(view.data) : format_message_line(view));
    return exit_ok;
  }

 private:
  std::string topic_;
  std::string data_;
  std::string timeout_text_ = "5s";
  std::vector<std::string> headers_;
  bool raw_ = false;
  connection_flags flags_;
};

}  // namespace

std::unique_ptr<command> add_req_command(CLI::App& app) {
  return std::make_unique<req_command>(app);
}

}  // namespace tidings::cli
