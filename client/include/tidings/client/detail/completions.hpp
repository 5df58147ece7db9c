#pragma once

// The callback types the library's parts pass around.

#include <functional>

#include "tidings/client/detail/unique_function.hpp"
#include "tidings/client/errors.hpp"
#include "tidings/client/message.hpp"

namespace tidings::client {

using message_handler = std::function<void(const message_view&)>;

namespace detail {
using status_completion = unique_function<void(const error&)>;
using request_completion = unique_function<void(const error&, message)>;
}  // namespace detail

}  // namespace tidings::client
