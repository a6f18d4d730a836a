#pragma once
// The pieces of a Hugging Face tokenizer.json pipeline: a normalized string that remembers where each
// of its bytes came from in the input, and the component interfaces (normalizer, pre-tokenizer, decoder)
// built from the JSON by the make_* factories. Each component reproduces the Rust `tokenizers` crate.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fusellm/util/json.hpp"

namespace fusellm::tok::hf {

// A byte range [begin, end) in the original input.
struct Span {
  uint32_t begin = 0, end = 0;
};

// Text being tokenized together with, for every byte, the original span of the character it came from
// (a character a normalizer inserts takes the span of the character it is inserted before, as in Rust).
struct NormStr {
  std::string text;
  std::vector<Span> align;
  // Where the words of a pre-tokenized string end (byte offsets; empty: the whole string is one word).
  // ByteLevel marks its words this way instead of making one string per word (fewer allocations);
  // materialize_words() turns them into separate strings for any pre-tokenizer that follows.
  std::vector<uint32_t> word_ends;

  // The input itself (bytes of `original` starting at `base`); invalid UTF-8 is replaced by U+FFFD,
  // aligned to the bytes it replaces.
  static NormStr from_original(std::string_view original, uint32_t base);

  bool empty() const { return text.empty(); }
  // Original span covered by normalized bytes [b, e).
  Span original_span(size_t b, size_t e) const;
  NormStr slice(size_t b, size_t e) const;
  void append(std::string_view bytes, Span span) {
    text.append(bytes);
    for (size_t i = 0; i < bytes.size(); ++i) align.push_back(span);
  }
  void append(const NormStr& other, size_t b, size_t e) {
    text.append(other.text, b, e - b);
    align.insert(align.end(), other.align.begin() + b, other.align.begin() + e);
  }
  // The span of a character inserted before normalized byte i: that byte's span (the last byte's when
  // i == size).
  Span insertion_point(size_t i) const;
};

// Replaces every string that has word_ends by one string per word.
void materialize_words(std::vector<NormStr>& pieces);

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(NormStr& s) const = 0;
};

// Splits each piece into smaller pieces (in order); pieces never overlap.
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(std::vector<NormStr>& pieces) const = 0;
};

// Decoders transform the list of token strings (Rust's decode_chain); the result is their concatenation.
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Each factory accepts one JSON component object; `source` (the file) names errors, e.g.
// "tokenizer.json: pre_tokenizer type 'BertPreTokenizer' is not supported".
std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& source);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& source);
std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& source);

class Regex;
// The pattern of a Replace normalizer/decoder: {"String": literal} or {"Regex": pattern}.
std::unique_ptr<Regex> make_replace_pattern(const json& j, const std::string& source, const char* what);

// Reads a required string field of a component.
std::string component_string(const json& j, const char* key, const std::string& source, const char* what);

}  // namespace fusellm::tok::hf
