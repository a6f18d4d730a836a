#pragma once
// Splitting documents into chunks that every tokenizer of an experiment can take whole (FuseLLM's
// split_long_text, made tokenizer-agnostic). A chunk's text, tokenized on its own by each tokenizer, has at
// most that tokenizer's budget of tokens (max_length - margin - the special tokens infer adds). Cuts are
// placed where every tokenizer has a token boundary, so the chunks tokenize (almost) as the document
// does; the chunks of a document concatenate back to it byte for byte. Algorithm: docs/formats.md.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fusellm/tokenizer/tokenizer.hpp"

namespace fusellm::data {

// One tokenizer the chunks must fit, with its budget: the most tokens a chunk's text may have on its own
// (encode(text, add_special_tokens = false)).
struct ChunkTokenizer {
  std::string name;  // for messages and statistics (e.g. the model name)
  const tok::Tokenizer* tokenizer = nullptr;
  int64_t budget = 0;
};

// The budget left by max_length once margin and the special tokens infer adds are taken off:
// max_length - margin - (add_bos ? 1 : 0) - (add_eos ? 1 : 0). EOS is reserved in every chunk, not only
// the last of a document, so a chunk's fit does not depend on where it sits.
int64_t chunk_token_budget(int64_t max_length, int64_t margin, bool add_bos, bool add_eos);

// The smallest budget the chunker accepts: a single character may take a dummy prefix plus four byte tokens.
inline constexpr int64_t kMinChunkBudget = 8;

struct ChunkerOptions {
  // Documents longer than this are tokenized by windows of this many bytes (each starting at the current
  // cut) instead of at once; boundaries in the last eighth of a window are not trusted.
  size_t window_bytes = size_t{1} << 20;
};

// A chunk of a document: its byte range and its token count under each tokenizer (text alone, no specials).
struct ChunkSpan {
  size_t begin = 0, end = 0;
  std::vector<int64_t> tokens;  // parallel to the chunker's tokenizers
  bool forced = false;          // cut at a character boundary because no common token boundary fitted
};

struct ChunkerStats {
  uint64_t documents = 0;          // documents split (skipped ones not included)
  uint64_t skipped_documents = 0;  // empty or whitespace-only
  uint64_t chunks = 0;
  uint64_t forced_cuts = 0;        // chunks ended at a character boundary (no common token boundary fitted)
  uint64_t backoffs = 0;           // candidate cuts rejected by re-tokenization
  uint64_t text_bytes = 0;         // bytes of the documents split
  std::vector<int64_t> max_tokens; // per tokenizer: the largest chunk (text alone)

  void merge(const ChunkerStats& other);
};

class Chunker {
 public:
  // Throws Error when a tokenizer is missing or its budget is below kMinChunkBudget (naming it).
  explicit Chunker(std::vector<ChunkTokenizer> tokenizers, ChunkerOptions options = {});

  // The chunks of one document in order, covering it exactly; none for a whitespace-only document (counted
  // as skipped). Thread-safe: split may run for several documents at once. Throws Error (naming
  // `doc_name`) when not even one character fits a budget.
  std::vector<ChunkSpan> split(std::string_view text, ChunkerStats& stats, std::string_view doc_name = "") const;

  const std::vector<ChunkTokenizer>& tokenizers() const { return tokenizers_; }

 private:
  struct Window;
  class DocumentSplitter;

  std::vector<ChunkTokenizer> tokenizers_;
  ChunkerOptions options_;
};

// The token boundaries of one encoding: sorted byte positions in [0, text_size] at which the tokenizer's
// segmentation breaks. A token whose (trimmed) span begins after everything before it ends marks a
// boundary at that end: byte-level BPE offsets leave out a token's leading spaces, while the space belongs
// to the token (" world"), so the break is before the space. Positions inside a UTF-8 sequence are never
// boundaries. 0 and text_size are always included.
std::vector<size_t> token_boundaries(const tok::Encoding& encoding, std::string_view text);

}  // namespace fusellm::data
