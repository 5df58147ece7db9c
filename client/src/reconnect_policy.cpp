#include "tidings/client/reconnect_policy.hpp"

#include <algorithm>
#include <cmath>

namespace tidings::client {

reconnect_policy::reconnect_policy(reconnect_settings settings, std::uint64_t seed)
    : settings_(settings), random_(seed) {
  settings_.multiplier = std::max(1.0, settings_.multiplier);
  settings_.jitter = std::clamp(settings_.jitter, 0.0, 1.0);
  settings_.initial_delay = std::max(settings_.initial_delay, std::chrono::milliseconds{0});
  settings_.max_delay = std::max(settings_.max_delay, settings_.initial_delay);
}

std::optional<std::chrono::milliseconds> reconnect_policy::next_delay() {
  if (!settings_.enabled) return std::nullopt;
  if (settings_.max_attempts && attempts_ >= *settings_.max_attempts) return std::nullopt;
  const auto max_ms = static_cast<double>(settings_.max_delay.count());
  // Capped in floating point first, so that a long outage cannot overflow the power.
  const double base =
      std::min(max_ms, static_cast<double>(settings_.initial_delay.count()) *
                           std::pow(settings_.multiplier, std::min(attempts_, 64U)));
  ++attempts_;
  std::uniform_real_distribution<double> spread(base * (1.0 - settings_.jitter),
                                                base * (1.0 + settings_.jitter));
  const double drawn = settings_.jitter > 0.0 ? spread(random_) : base;
  return std::chrono::milliseconds{static_cast<std::int64_t>(std::clamp(drawn, 0.0, max_ms))};
}

}  // namespace tidings::client
