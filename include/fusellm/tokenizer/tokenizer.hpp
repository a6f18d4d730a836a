#pragma once
// One tokenizer interface over SentencePiece models and Hugging Face tokenizer.json / vocab.json+merges.
// Ids and token strings are exactly what Hugging Face produces (convert_ids_to_tokens): alignment works
// on those strings. This stage does not depend on LibTorch.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fusellm/util/fs.hpp"

namespace fusellm::tok {

struct Encoding {
  std::vector<int32_t> ids;
  // Per token, [begin, end) byte offsets into the input text (UTF-8). Special tokens added by
  // add_special_tokens (BOS/EOS) get an empty span at their position.
  std::vector<std::pair<uint32_t, uint32_t>> offsets;
};

struct SpecialTokens {
  std::optional<int32_t> bos, eos, unk, pad;
  bool add_bos = false;  // what encode(…, add_special_tokens=true) adds
  bool add_eos = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual Encoding encode(std::string_view text, bool add_special_tokens) const = 0;
  // As encode, but every offset is the span of input bytes the token stands for, and the non-empty spans
  // tile the text in order (tokens splitting one character share its span): what alignment by offsets
  // needs. encode's offsets are HF's: a ByteLevel tokenizer with trim_offsets (GPT-2, GPT-NeoX) reports
  // "Ġcat" as "cat" and "ĊĠ" without its space, and bytes a normalizer drops (SentencePiece's removed
  // leading or collapsed whitespace, a combining mark NFC composes away) belong to no token. Here trimming
  // is skipped, dropped bytes go to the token before them (leading ones to the first token), and
  // empty-span tokens (BOS, EOS, control pieces) sit where the covered prefix ends.
  Encoding encode_untrimmed(std::string_view text, bool add_special_tokens) const;
  std::vector<int32_t> encode_ids(std::string_view text, bool add_special_tokens) const {
    return encode(text, add_special_tokens).ids;
  }
  // Encodes many texts on `threads` threads (0 = hardware concurrency); order preserved.
  std::vector<Encoding> encode_batch(const std::vector<std::string>& texts, bool add_special_tokens,
                                     int threads = 0) const;

  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const = 0;

  virtual std::string id_to_token(int32_t id) const = 0;  // throws Error for an id out of range
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual size_t vocab_size() const = 0;                  // including added tokens
  virtual bool is_special(int32_t id) const = 0;

  const SpecialTokens& special_tokens() const { return special_; }
  SpecialTokens& special_tokens() { return special_; }

  // "sentencepiece" or "bpe" (byte-level or byte-fallback: see marker()).
  virtual std::string kind() const = 0;
  // The marker a word-initial space becomes in token strings: "▁" (SentencePiece, Llama tokenizer.json)
  // or "Ġ" (byte-level BPE).
  virtual std::string space_marker() const = 0;
  // Content hash (hex) of the files the tokenizer was loaded from: manifests record it.
  const std::string& hash() const { return hash_; }
  const std::string& source() const { return source_; }
  // Set by the loader (load_tokenizer): where the tokenizer came from and the hash of those files.
  void set_origin(std::string source, std::string hash) {
    source_ = std::move(source);
    hash_ = std::move(hash);
  }

 protected:
  // encode without offset post-processing (no trim_offsets); encode_untrimmed then closes the gaps.
  virtual Encoding encode_raw_offsets(std::string_view text, bool add_special_tokens) const {
    return encode(text, add_special_tokens);
  }

  SpecialTokens special_;
  std::string hash_;
  std::string source_;
};

// Loads as Hugging Face does: a directory's tokenizer.json if present, else tokenizer.model, else
// vocab.json + merges.txt; tokenizer_config.json / special_tokens_map.json give add_bos/add_eos and
// special tokens. A file path loads that file (tokenizer.json, *.model, or vocab.json with merges.txt
// beside it). Errors name the file.
std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& dir_or_file);

}  // namespace fusellm::tok
