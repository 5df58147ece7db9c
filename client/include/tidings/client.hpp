#pragma once

// The Tidings client library: include this one header.

#include "tidings/client/blocking_client.hpp"
#include "tidings/client/connection.hpp"
#include "tidings/client/errors.hpp"
#include "tidings/client/message.hpp"
#include "tidings/client/options.hpp"
