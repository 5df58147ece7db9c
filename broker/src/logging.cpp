#include "tidings/broker/logging.hpp"

#include <chrono>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "tidings/protocol/json.hpp"

namespace tidings::broker {
namespace {

// One JSON object per line: {"time":...,"level":...,"msg":...}, strings escaped, so that
// log shippers can parse every line whatever a client named itself.
class json_sink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    line_.clear();
    line_ += "{\"time\":\"";
    append_time(msg.time);
    line_ += "\",\"level\":\"";
    const auto level = spdlog::level::to_string_view(msg.level);
    line_.append(level.data(), level.size());
    line_ += "\",\"msg\":";
    protocol::json::append_string(line_, std::string_view(msg.payload.data(), msg.payload.size()));
    line_ += "}\n";
    std::fwrite(line_.data(), 1, line_.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  void append_time(spdlog::log_clock::time_point time) {
    const auto since_epoch = time.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
    const std::time_t t = seconds.count();
    std::tm utc{};
    gmtime_r(&t, &utc);
    char text[40];
    const auto n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
    line_.append(text, n);
    char fraction[8];
    const int m = std::snprintf(fraction, sizeof fraction, ".%03dZ", static_cast<int>(millis));
    line_.append(fraction, static_cast<std::size_t>(m));
  }

  std::string line_;
};

}  // namespace

std::string escape_for_log(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    switch (byte) {
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      default:
        break;
    }
    if (byte < 0x20 || byte == 0x7F) {
      out += "\\x";
      out += hex[byte >> 4];
      out += hex[byte & 0xF];
      continue;
    }
    // U+0080..U+009F (C1 controls, e.g. CSI) are 0xC2 0x80..0x9F in UTF-8.
    if (byte == 0xC2 && i + 1 < text.size()) {
      const auto next = static_cast<unsigned char>(text[i + 1]);
      if (next >= 0x80 && next <= 0x9F) {
        out += "\\u00";
        out += hex[next >> 4];
        out += hex[next & 0xF];
        ++i;
        continue;
      }
    }
    out += static_cast<char>(byte);
  }
  return out;
}

void setup_logging(const std::string& level, log_format format) {
  const auto parsed = spdlog::level::from_str(level);
  // from_str maps anything unknown to `off`; only "off" itself may mean that.
  if (parsed == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level '" + level + "'");
  }
  std::shared_ptr<spdlog::logger> logger;
  if (format == log_format::json) {
    logger = std::make_shared<spdlog::logger>("tidingsd", std::make_shared<json_sink>());
  } else {
    logger = spdlog::stderr_color_mt("tidingsd");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%-5l%$ %v");
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace tidings::broker
