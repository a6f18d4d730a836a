#pragma once
// Where tests find ../shared (test material beside the checkout) and scratch space.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace fusellm::test {

inline std::filesystem::path source_dir() { return FUSELLM_SOURCE_DIR; }

// ../shared beside the checkout, or $FUSELLM_SHARED_DIR; empty when neither exists.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("FUSELLM_SHARED_DIR"); env && *env) return env;
  auto p = source_dir().parent_path() / "shared";
  return std::filesystem::exists(p / "data") ? p : std::filesystem::path();
}

// A fresh, empty scratch directory for one test.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("fusellm_test_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string cli_path() { return FUSELLM_CLI_PATH; }

}  // namespace fusellm::test

// Skips the current test with a clear message when ../shared is absent (a user's fresh clone).
#define FUSELLM_REQUIRE_SHARED()                                                                   \
  do {                                                                                             \
    if (::fusellm::test::shared_dir().empty())                                                  \
      GTEST_SKIP() << "../shared (test material beside the checkout) not found; set "              \
                      "FUSELLM_SHARED_DIR or place it beside the repository to run this test";     \
  } while (0)
