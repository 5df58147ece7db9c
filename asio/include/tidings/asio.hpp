#pragma once

// Include Asio through this header only: Boost 1.74's awaitable.hpp uses std::exchange
// without including <utility>.
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace tidings {
namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;
}  // namespace tidings
