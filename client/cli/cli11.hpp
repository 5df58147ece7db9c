#pragma once

// CLI11 through this header only. g++ 12 reports a "potential null pointer dereference"
// inside CLI11's own string splitting (inlined std::vector<std::string> growth) at some
// optimization settings; it is a false positive in a third-party header, silenced here
// rather than for our own code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop
