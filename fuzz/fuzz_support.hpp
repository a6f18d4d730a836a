#pragma once
// What every fuzz target shares. A target turns the fuzzer's bytes into the files a real entry point reads
// (most fusellm parsers take a path or a directory, as the CLI does), calls that entry point, and treats a
// fusellm::Error as the expected outcome of bad input. Anything else escaping — another exception type,
// which would reach the user as a LibTorch or library message instead of a one-line error — aborts, so
// the fuzzer records it as a crash, as it does for sanitizer reports.
//
// Multi-file inputs (a store's manifest and shard, a tokenizer directory) are "bundles": sections that
// each start with a line `#@ <relative path>` (at the very beginning of the input, or after a newline that
// belongs to the separator). An input without a leading `#@ ` is one file with the target's default name.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fusellm/util/error.hpp"
#include "fusellm/util/log.hpp"

namespace fusellm::fuzz {

namespace fs = std::filesystem;

// Bundles hold at most this many files; a path is at most five components of [A-Za-z0-9._-] (no ".."),
// enough for a ZeRO shard (checkpoints/step-N/trainer_state/zero/rank-R-of-W.safetensors).
constexpr size_t kMaxBundleFiles = 12;

inline bool safe_relative_path(std::string_view path) {
  if (path.empty() || path.size() > 100 || path.front() == '/') return false;
  int components = 1;
  std::string_view::size_type start = 0;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      std::string_view part = path.substr(start, i - start);
      if (part.empty() || part == "." || part == "..") return false;
      start = i + 1;
      if (i < path.size()) ++components;
      continue;
    }
    const char c = path[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  }
  return components <= 5;
}

// (relative path, contents) of every section; `default_name` when the input is not a bundle.
inline std::vector<std::pair<std::string, std::string_view>> split_bundle(std::string_view input,
                                                                         const std::string& default_name) {
  std::vector<std::pair<std::string, std::string_view>> files;
  if (input.substr(0, 3) != "#@ ") {
    files.emplace_back(default_name, input);
    return files;
  }
  size_t pos = 0;
  while (pos < input.size() && files.size() < kMaxBundleFiles) {
    // input[pos..] starts with "#@ ".
    const size_t name_end = input.find('\n', pos);
    if (name_end == std::string_view::npos) break;
    std::string name(input.substr(pos + 3, name_end - pos - 3));
    const size_t next = input.find("\n#@ ", name_end + 1);
    const size_t end = next == std::string_view::npos ? input.size() : next;
    std::string_view body = name_end + 1 <= end ? input.substr(name_end + 1, end - name_end - 1) : std::string_view();
    if (safe_relative_path(name)) files.emplace_back(std::move(name), body);
    if (next == std::string_view::npos) break;
    pos = next + 1;
  }
  return files;
}

// The contents of the bundle section `name`, or `fallback` when the input has none.
inline std::string section_or(std::string_view input, const std::string& name, std::string fallback) {
  if (input.substr(0, 3) != "#@ ") return fallback;
  for (const auto& [section, body] : split_bundle(input, "")) if (section == name) return std::string(body);
  return fallback;
}

// A directory private to this process, emptied before each input.
inline const fs::path& scratch_root() {
  static const fs::path root = [] {
    const char* base = std::getenv("TMPDIR");
    fs::path dir = fs::path(base && *base ? base : "/tmp") / ("fusellm-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(scratch_root(), ec);
    });
    return dir;
  }();
  return root;
}

inline fs::path fresh_scratch() {
  const fs::path dir = scratch_root() / "in";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  return dir;
}

// A bundle may name both "a" and "a/b": the second file cannot be written and is left out.
inline void write_bytes(const fs::path& path, std::string_view bytes) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec || fs::is_directory(path, ec)) return;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Writes the input's files into a fresh scratch directory and returns it.
inline fs::path materialize(std::string_view input, const std::string& default_name) {
  const fs::path dir = fresh_scratch();
  for (const auto& [name, body] : split_bundle(input, default_name)) write_bytes(dir / name, body);
  return dir;
}

// Runs `body`; a fusellm::Error is the expected answer to bad input, anything else aborts.
template <typename Body>
void expect_clean_errors(const char* target, Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    // FUZZ_VERBOSE=1 shows how far an input got: a seed that stops at its first check covers little.
    static const bool verbose = std::getenv("FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "%s: error: %s\n", target, e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: an exception other than fusellm::Error escaped: %s\n", target, e.what());
    std::abort();
  }
}

// Quiet logging: the readers warn about recoverable oddities, which would flood the fuzzer's output.
inline void init_quiet_logging() {
  static const bool done = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)done;
}

}  // namespace fusellm::fuzz
