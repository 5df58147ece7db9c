#pragma once

// What the client checks before a `pub` or `sub` goes anywhere, and the `pub` frame
// itself. Pure (no I/O, no connection state): the connection decides where a frame goes
// (the socket's queue or the reconnect buffer) and these functions say whether it may and
// write it there. Each check refuses what the server would refuse, with the error code
// the server would use, so that a bad call fails at once and locally instead of costing
// a round trip (or, for a plain publish, an asynchronous on_error).

#include <cstdint>
#include <string>
#include <string_view>

#include "tidings/client/detail/completions.hpp"
#include "tidings/client/errors.hpp"
#include "tidings/client/message.hpp"

namespace tidings::client::detail {

// A request id as it goes on the wire.
std::string id_text(std::int64_t id);

// The headers as the JSON object a `pub` carries, written to `out` (replaced). Refuses an
// empty or repeated name (bad_request).
error encode_headers(const header_list& list, std::string& out);

// The arguments of a publish: topic (valid, not a reserved $ topic), reply (valid when
// given), data (one JSON value, nesting at most one level less than the frame allows) and
// headers. On success `headers_json` holds the encoded headers (empty without headers).
error check_publish(std::string_view topic, std::string_view data, const publish_options& extra,
                    std::string& headers_json);

// Appends one `pub` frame (with `id` when non-zero) to `out`, arguments checked by
// check_publish. Refuses (frame_too_large) a frame whose body would exceed `max_frame`,
// leaving `out` as it was.
error append_pub(std::string& out, std::string_view topic, std::string_view data,
                 std::string_view reply, std::string_view headers_json, std::int64_t id,
                 std::uint64_t max_frame);

// The arguments of a subscription: pattern, queue name, a handler, and `max` (an integer
// the wire can carry exactly).
error check_subscription(std::string_view pattern, const message_handler& handler,
                         const subscribe_options& extra);

}  // namespace tidings::client::detail
