#pragma once
// The Hugging Face tokenizer pipeline as one Tokenizer: added tokens -> normalizer -> pre-tokenizer ->
// BPE model -> post-processor (ByteLevel offset trimming, TemplateProcessing), and the decoder chain.
// Built by the tokenizer.json and the vocab.json + merges.txt loaders.
#include <memory>
#include <string>
#include <vector>

#include "fusellm/tokenizer/tokenizer.hpp"
#include "hf_added_tokens.hpp"
#include "hf_bpe.hpp"
#include "hf_pipeline.hpp"

namespace fusellm::tok::hf {

// One post-processing step (a Sequence post-processor is a list of them).
struct PostStep {
  enum class Kind { ByteLevelTrim, Template } kind;
  bool add_prefix_space = false;  // ByteLevelTrim: a single leading space of the first token stays
  // Template: the "single" template; an empty `ids` stands for the sequence ($A).
  std::vector<std::vector<int32_t>> items;
};

struct HfParts {
  std::string source;  // the file (for errors and Tokenizer::source())
  std::string hash;
  std::unique_ptr<BpeModel> model;
  AddedVocabulary added;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Decoder> decoder;
  std::vector<PostStep> post;
  std::string space_marker;  // "Ġ" (byte-level) or "▁"
};

class HfTokenizer : public Tokenizer {
 public:
  explicit HfTokenizer(HfParts parts);

  Encoding encode(std::string_view text, bool add_special_tokens) const override {
    return encode_with(text, add_special_tokens, true);
  }
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override;
  std::string id_to_token(int32_t id) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  size_t vocab_size() const override { return vocab_size_; }
  bool is_special(int32_t id) const override;
  std::string kind() const override { return "bpe"; }
  std::string space_marker() const override { return parts_.space_marker; }

 private:
  const std::string* token_string(int32_t id) const;  // added tokens first, then the model
  Encoding encode_raw_offsets(std::string_view text, bool add_special_tokens) const override {
    return encode_with(text, add_special_tokens, false);
  }
  // trim_offsets = false skips the ByteLevel post-processor's offset trimming (encode_untrimmed).
  Encoding encode_with(std::string_view text, bool add_special_tokens, bool trim_offsets) const;
  void encode_text(NormStr piece, Encoding& out) const;
  void trim_byte_level_offsets(Encoding& enc, bool add_prefix_space) const;

  HfParts parts_;
  size_t vocab_size_ = 0;
  // Per id: how many space characters ('Ġ' or whitespace) its token string starts and ends with, for
  // ByteLevel offset trimming.
  std::vector<std::pair<uint16_t, uint16_t>> edge_spaces_;
};

// Content hash of files already read, as load_tokenizer computes it (docs/formats.md):
// XXH3-64 over, per file, its name + NUL + size (uint64 little-endian) + bytes; 16 hex digits.
std::string hash_files(const std::vector<std::pair<std::string, const std::string*>>& named_contents);

}  // namespace fusellm::tok::hf
