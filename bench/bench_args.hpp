#pragma once
// What every bench/ program shares with the CLI: arguments validated before any work, with a one-line error
// naming the argument, and errors (fusellm::Error or any other exception) reported as one line on stderr
// with exit 1 instead of an uncaught exception's abort.
#include <cstdint>
#include <cctype>
#include <cstdio>
#include <exception>
#include <string>

#include "fusellm/util/error.hpp"

namespace fusellm::bench {

// `text` as a whole decimal integer >= min; else fails with "<what>: expected an integer >= <min>, got
// '<text>'" (guarded_main puts the program's name in front).
inline int64_t parse_int(const std::string& what, const char* text, int64_t min) {
  const std::string s = text ? text : "";
  size_t used = 0;
  long long value = 0;
  bool ok = !s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-');
  if (ok) {
    try {
      value = std::stoll(s, &used, 10);
    } catch (const std::exception&) {
      ok = false;
    }
  }
  if (!ok || used != s.size() || value < min) fail("{}: expected an integer >= {}, got '{}'", what, min, s);
  return value;
}

// The positional argument argv[index] parsed by parse_int, or `fallback` when there are fewer arguments.
inline int64_t int_arg(int argc, char** argv, int index, const std::string& what, int64_t fallback,
                       int64_t min) {
  if (index >= argc) return fallback;
  return parse_int("argument " + std::to_string(index) + " (" + what + ")", argv[index], min);
}

// Fails when more than `max_positional` arguments are given.
inline void check_arg_count(const char* prog, int argc, int max_positional, const char* usage) {
  if (argc - 1 > max_positional) fail("too many arguments (usage: {} {})", prog, usage);
}

// Runs `body` (returning the exit code); any exception becomes "<prog>: error: <message>" and exit 1.
template <class Body>
int guarded_main(const char* prog, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: error: %s\n", prog, e.what());
    return 1;
  }
}

}  // namespace fusellm::bench
