#pragma once
// PCRE2 regular expressions (UTF + UCP, JIT-compiled when available) for the pre-tokenizers and the
// Replace normalizer/decoder: tokenizer.json patterns are Oniguruma-syntax, which PCRE2 accepts for the
// constructs tokenizers use (\p{L}, \p{N}, lookahead, (?i:...)). Not std::regex: it lacks Unicode classes.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fusellm::tok::hf {

class Regex {
 public:
  // `what` names the pattern's origin for errors (e.g. "tokenizer.json: pre_tokenizer Split").
  Regex(const std::string& pattern, const std::string& what);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-empty, non-overlapping match in `text` (valid UTF-8), left to right, as byte ranges.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  // A pattern matching `literal` exactly.
  static std::string escape(std::string_view literal);

 private:
  void* code_ = nullptr;  // pcre2_code_8
  std::string what_;
};

}  // namespace fusellm::tok::hf
