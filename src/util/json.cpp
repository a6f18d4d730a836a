#include "fusellm/util/json.hpp"

namespace fusellm {

json parse_json_text(const std::string& text, const std::string& what) {
  try {
    return json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
    // nlohmann's message starts with "[json.exception.parse_error.101] "; keep only the useful part.
    std::string msg = e.what();
    auto pos = msg.find("] ");
    if (pos != std::string::npos) msg = msg.substr(pos + 2);
    fail("{}: invalid JSON: {}", what, msg);
  }
}

json parse_json_file(const fs::path& path) { return parse_json_text(read_file(path), path.string()); }

JsonView JsonView::child(const std::string& key) const {
  if (!has(key)) fail("{}: missing required key '{}'", source_, key_path(key));
  const json& v = (*j_)[key];
  if (!v.is_object()) fail("{}: key '{}': expected an object, got {}", source_, key_path(key), v.type_name());
  return JsonView(v, source_, key_path(key));
}

}  // namespace fusellm
