#pragma once

namespace tidings::client::detail {

// Where the frame of a pending operation is. `buffered`: in the reconnect buffer, waiting
// for a connection whose `connect` the server has accepted; it survives failed attempts.
// `sent`: handed to the current socket; if that connection is lost, the answer is lost
// with it and the operation fails with errc::disconnected.
enum class outbound_phase { buffered, sent };

}  // namespace tidings::client::detail
