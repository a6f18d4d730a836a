#pragma once
// Trains a BPE tokenizer and writes it as a Hugging Face tokenizer.json (which HF `tokenizers` and
// fusellm's own loader read), in one of two styles:
//   - byte_level: GPT-2 / GPT-NeoX — the GPT-2 pre-tokenizer regex, bytes mapped to printable characters,
//     all 256 of them in the base vocabulary (nothing is ever unknown), `<|endoftext|>` special;
//   - metaspace:  Llama — spaces as "▁" (one prepended to the text), words split before each "▁", the
//     most frequent characters as the base alphabet, every other character by byte fallback (<0x00> …
//     <0xFF> tokens), `<unk>`, `<s>` (added in front by the post-processor) and `</s>`.
// Merges are learned by the classic algorithm: count adjacent symbol pairs over the pre-tokenized words
// (weighted by word frequency), merge the most frequent (ties: the smaller pair of strings), repeat until
// the vocabulary has vocab_size entries or no pair occurs min_frequency times. Deterministic.
#include <string>
#include <vector>

#include "fusellm/util/json.hpp"

namespace fusellm::tok {

enum class BpeStyle { byte_level, metaspace };

struct BpeTrainOptions {
  BpeStyle style = BpeStyle::byte_level;
  int64_t vocab_size = 1024;      // special tokens, base symbols and merges together
  int64_t min_frequency = 2;      // a pair seen fewer times is not merged
  int64_t limit_alphabet = 256;   // metaspace: base characters kept (by frequency); the rest fall back to bytes
  // metaspace: learn as spm_train does for Llama-2 (split_digits, split_by_unicode_script, one sentence per
  // line): a digit is always a token of its own, letters never share a token with punctuation or symbols
  // (a ▁ joins whatever follows it), and line breaks are never in a token (they encode by byte fallback,
  // Llama-2's <0x0A>). The tokenizer.json has the same form; only the merges differ.
  bool sentencepiece_rules = false;
  // byte_level: every digit a token of its own (HF's Digits pre-tokenizer with individual_digits before
  // ByteLevel, as in DeepSeek's and Qwen's tokenizers): " 27" is "Ġ", "2", "7", as Llama's "▁", "2", "7".
  bool split_digits = false;
};

struct BpeTrainResult {
  json tokenizer_json;            // tokenizer.json
  json tokenizer_config;          // tokenizer_config.json (special tokens, add_bos_token)
  int64_t merges = 0, base_symbols = 0, words = 0;
};

// Throws Error when vocab_size leaves no room for the base vocabulary or the texts are empty.
BpeTrainResult train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& options);

}  // namespace fusellm::tok
