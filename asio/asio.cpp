// The one translation unit that compiles Asio's implementation.
#include <utility>  // Asio 1.18's awaitable.hpp uses std::exchange without including it

#include <boost/asio/impl/src.hpp>
