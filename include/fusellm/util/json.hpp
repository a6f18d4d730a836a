#pragma once
// JSON helpers over nlohmann::json: file parsing with comments allowed, and typed look-ups whose errors
// name the file and the key path ("config.json: key 'hidden_size': expected an integer, got string").
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

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
