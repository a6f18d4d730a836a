#pragma once
// Errors a user can cause (bad files, bad config, bad flags) are thrown as fusellm::Error with a one-line
// message naming what failed and where; the CLI prints the message and exits non-zero.
#include <spdlog/fmt/fmt.h>

#include <stdexcept>
#include <string>

namespace fusellm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace fusellm

// Checks a condition that bad input can break; the message says what is wrong.
#define FUSELLM_CHECK(cond, ...)      \
  do {                                \
    if (!(cond)) ::fusellm::fail(__VA_ARGS__); \
  } while (0)
