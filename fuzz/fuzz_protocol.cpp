// libFuzzer target for the protocol library: framing, strict JSON, both parsers and the
// encoders. The invariants live in fuzz_protocol_check.hpp, shared with the regression
// test that replays fuzz/regressions/.
//
//   ./build-fuzz/fuzz/fuzz_protocol -max_total_time=600 fuzz/corpus-work fuzz/corpus

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "fuzz_protocol_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    tidings::fuzz::check_input(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const tidings::fuzz::invariant_violation& e) {
    std::fprintf(stderr, "invariant violated: %s\n", e.what());
    std::abort();
  }
  return 0;
}
