#pragma once
// JSON helpers over nlohmann::json: file parsing with comments allowed, and typed look-ups whose errors
// name the file and the key path ("config.json: key 'hidden_size': expected an integer, got string").
#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>

#include "fusellm/util/error.hpp"
#include "fusellm/util/fs.hpp"

namespace fusellm {

using json = nlohmann::json;

// Parses a JSON file (// and /* */ comments allowed); errors name the file and the parser's position.
json parse_json_file(const fs::path& path);
json parse_json_text(const std::string& text, const std::string& what);

// Runs `body` (a reader of JSON `source`), turning nlohmann's own exceptions — a raw .get<T>() of the wrong
// type, a missing key through at() — into one-line Errors naming the file. Readers name keys themselves
// where they can (JsonView); this is the net for the look-ups that do not, so hostile input never escapes
// as a library exception.
template <typename Body>
auto with_json_errors(const std::string& source, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const json::exception& e) {
    fail("{}: malformed: {}", source, e.what());
  }
}

// `v` as the integer type T, or nullopt when it is not an integer or does not fit T. A raw get<T>() is no
// check: on a float such as 9e61 it is an undefined float-to-integer cast (UBSan, fuzzing the ZeRO shard
// table), on -1 into an unsigned type a silent wrap.
template <typename T>
std::optional<T> json_integer(const json& v) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  using Limits = std::numeric_limits<T>;
  if (v.is_number_unsigned()) {
    const uint64_t x = v.get<uint64_t>();
    if (x <= static_cast<uint64_t>(Limits::max())) return static_cast<T>(x);
  } else if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    if constexpr (std::is_signed_v<T>) {
      if (x >= static_cast<int64_t>(Limits::min()) && x <= static_cast<int64_t>(Limits::max())) return static_cast<T>(x);
    } else if (x >= 0 && static_cast<uint64_t>(x) <= static_cast<uint64_t>(Limits::max())) {
      return static_cast<T>(x);
    }
  }
  return std::nullopt;
}

// json_integer, failing with "<what>: expected an integer in [min, max], got <value>".
template <typename T>
T require_integer(const json& v, const std::string& what) {
  if (const std::optional<T> x = json_integer<T>(v)) return *x;
  fail("{}: expected an integer in [{}, {}], got {}", what, std::numeric_limits<T>::min(), std::numeric_limits<T>::max(),
       v.is_number() ? v.dump() : std::string(v.type_name()));
}

// A JSON object together with where it came from, so look-ups can say which file and key is wrong.
class JsonView {
 public:
  JsonView(const json& j, std::string source, std::string path = "")
      : j_(&j), source_(std::move(source)), path_(std::move(path)) {}

  const json& raw() const { return *j_; }
  bool has(const std::string& key) const { return j_->is_object() && j_->contains(key) && !(*j_)[key].is_null(); }
  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const std::string& source() const { return source_; }

  JsonView child(const std::string& key) const;  // throws if missing or not an object

  template <typename T>
  T get(const std::string& key) const {
    if (!has(key)) fail("{}: missing required key '{}'", source_, key_path(key));
    return convert<T>(key);
  }
  template <typename T>
  T get_or(const std::string& key, T fallback) const {
    return has(key) ? convert<T>(key) : fallback;
  }
  template <typename T>
  std::optional<T> get_opt(const std::string& key) const {
    if (!has(key)) return std::nullopt;
    return convert<T>(key);
  }

 private:
  template <typename T>
  T convert(const std::string& key) const {
    const json& v = (*j_)[key];
    try {
      if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean()) throw std::invalid_argument("a boolean");
      } else if constexpr (std::is_integral_v<T>) {
        if (!v.is_number_integer()) throw std::invalid_argument("an integer");
        if (!json_integer<T>(v)) return require_integer<T>(v, fmt::format("{}: key '{}'", source_, key_path(key)));
      } else if constexpr (std::is_floating_point_v<T>) {
        if (!v.is_number()) throw std::invalid_argument("a number");
      } else if constexpr (std::is_same_v<T, std::string>) {
        if (!v.is_string()) throw std::invalid_argument("a string");
      }
      return v.get<T>();
    } catch (const std::invalid_argument& e) {
      fail("{}: key '{}': expected {}, got {}", source_, key_path(key), e.what(), v.type_name());
    } catch (const json::exception& e) {
      fail("{}: key '{}': {}", source_, key_path(key), e.what());
    }
  }

  const json* j_;
  std::string source_;
  std::string path_;
};

}  // namespace fusellm
