#pragma once
// What a call throws as fusellm::Error, as text; kNoError when it throws nothing (tests of one-line errors).
#include <functional>
#include <string>

#include "fusellm/util/error.hpp"

namespace fusellm::test {

inline const std::string kNoError = "(no error)";

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return kNoError;
}

}  // namespace fusellm::test
