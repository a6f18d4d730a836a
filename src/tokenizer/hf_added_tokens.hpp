#pragma once
// Added tokens of tokenizer.json ("added_tokens"): matched in the text before the model runs, as the
// Rust crate's AddedVocabulary does — leftmost-longest matches, non-normalized tokens on the raw text and
// normalized ones on the normalized text, with single_word / lstrip / rstrip rules.
#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hf_pipeline.hpp"

namespace fusellm::tok::hf {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false, rstrip = false, single_word = false;
  bool normalized = true;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  // Normalized tokens are matched in their normalized form (`normalizer` may be null), as in Rust.
  AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // A stretch of text: an added token (id >= 0) or text for the next stage (id == -1), bytes [begin, end).
  struct Piece {
    int32_t id;
    size_t begin, end;
  };
  // Splits `text` at the tokens whose `normalized` flag equals `normalized`; pieces cover the text in order.
  std::vector<Piece> split(std::string_view text, bool normalized) const;

  const AddedToken* by_id(int32_t id) const;
  const AddedToken* by_content(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;  // what each token matches
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  // Per first byte, indices of tokens (per `normalized` flag) longest first: leftmost-longest matching.
  std::vector<size_t> candidates_[2][256];
  // Per first byte: the possible second bytes of longer tokens, and whether a one-byte token exists,
  // so most positions are rejected without comparing (e.g. NeoX's many all-space tokens at " word").
  std::bitset<256> second_bytes_[2][256];
  bool one_byte_[2][256] = {};
  bool any_[2] = {false, false};
};

}  // namespace fusellm::tok::hf
