#pragma once
// Helpers shared by the Hugging Face tokenizer tests.
#include <string>
#include <vector>

#include "common/test_paths.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

namespace fusellm::tok::test_hf {

inline fs::path fixtures_dir() { return test::source_dir() / "tests/tokenizer/fixtures"; }
inline fs::path neox_tokenizer_json() {
  return test::shared_dir() / "data/tokenizers/gpt-neox-20b/20B_tokenizer.json";
}

inline std::vector<json> read_jsonl(const fs::path& path) {
  std::vector<json> rows;
  std::string text = read_file(path);
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    if (eol > pos) rows.push_back(json::parse(text.substr(pos, eol - pos)));
    pos = eol + 1;
  }
  return rows;
}

// Byte offsets -> code point offsets, as the Rust crate's BytesToCharOffsetConverter (used by its Python
// and Node bindings) maps them: a byte inside a character maps to that character; an end offset at the
// end of the text maps past the last character.
inline std::vector<std::pair<uint32_t, uint32_t>> to_code_point_offsets(
    const std::string& text, const std::vector<std::pair<uint32_t, uint32_t>>& offsets) {
  std::vector<uint32_t> char_of_byte;
  uint32_t index = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++index;
    char_of_byte.push_back(index);
  }
  auto count = text.empty() ? 0u : index + 1;
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (auto [b, e] : offsets) {
    uint32_t cb = b < char_of_byte.size() ? char_of_byte[b] : count;
    uint32_t ce = e < char_of_byte.size() ? char_of_byte[e] : (e > 0 ? char_of_byte[e - 1] + 1 : cb + 1);
    out.emplace_back(cb, ce);
  }
  return out;
}

}  // namespace fusellm::tok::test_hf
