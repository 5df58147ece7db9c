// Replays every input saved in fuzz/regressions/ (crashes the fuzzer once found, and
// tricky inputs) through the fuzzer's own checks, with the sanitizers of this build.
#include "fuzz_protocol_check.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#ifndef TIDINGS_FUZZ_REGRESSIONS_DIR
#error "TIDINGS_FUZZ_REGRESSIONS_DIR must name the fuzz/regressions directory"
#endif

namespace tidings::fuzz {
namespace {

std::vector<std::filesystem::path> regression_files() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(TIDINGS_FUZZ_REGRESSIONS_DIR)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string read_file(const std::filesystem::path& path) {
  std::string data(std::filesystem::file_size(path), '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  EXPECT_EQ(static_cast<std::size_t>(in.gcount()), data.size()) << path;
  return data;
}

TEST(FuzzRegressionTest, DirectoryIsNotEmpty) {
  EXPECT_FALSE(regression_files().empty()) << TIDINGS_FUZZ_REGRESSIONS_DIR;
}

TEST(FuzzRegressionTest, EverySavedInputPassesTheFuzzerChecks) {
  for (const auto& path : regression_files()) {
    SCOPED_TRACE(path.filename().string());
    const std::string data = read_file(path);
    try {
      check_input(data);
    } catch (const invariant_violation& e) {
      ADD_FAILURE() << "invariant violated: " << e.what();
    }
  }
}

// The checks are not vacuous: they notice a decoder that breaks its own contract.
TEST(FuzzRegressionTest, ChecksRejectAWrongOutcome) {
  ref_result ref;
  ref.accepted = true;
  ref.top_is_object = true;
  EXPECT_THROW(cross_check_json("{}", false, ref), invariant_violation);
  proto::parse_result ok;
  EXPECT_THROW(require_outcome(ok, fail(proto::error_code::bad_json, false), "expected"),
               invariant_violation);
}

}  // namespace
}  // namespace tidings::fuzz
