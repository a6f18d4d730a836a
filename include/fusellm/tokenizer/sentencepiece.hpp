#pragma once
// Native SentencePiece tokenizer (BPE and Unigram `tokenizer.model` files), producing exactly the ids of
// Hugging Face's LlamaTokenizer (legacy) / libsentencepiece, without linking libsentencepiece.
//
// Encoding, per Hugging Face: the text is first split at the text of special pieces (CONTROL and UNKNOWN:
// "<s>", "</s>", "<unk>"), which become their ids; every other segment is encoded as sentencepiece does
// (normalize: dummy prefix, whitespace escaping to "▁", optional whitespace collapsing; then BPE merges by
// piece score or Unigram Viterbi; unknown characters to <0xXX> byte pieces with byte_fallback, else <unk>).
// Offsets follow sentencepiece: the dummy prefix has no surface, and of the byte pieces of one unknown
// character only the last carries the character's span (the others are empty at its start).
// Decoding follows Hugging Face's Llama decoder: "▁" → " ", byte pieces → bytes (an invalid UTF-8 run of
// byte pieces → one U+FFFD per byte), special pieces as their text, then one leading space stripped when
// the model adds a dummy prefix.
#include <array>
#include <unordered_map>

#include "fusellm/tokenizer/sentencepiece_model.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"

namespace fusellm::tok {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // `source` names the model file in errors. Special tokens default to the model's bos/eos/unk/pad ids,
  // with add_bos = true (a valid bos id) and add_eos = false, as LlamaTokenizer does.
  SentencePieceTokenizer(SpmModel model, std::string source);
  static std::unique_ptr<SentencePieceTokenizer> from_file(const fs::path& model_file);

  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;  // lookup tables point into model_
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  Encoding encode(std::string_view text, bool add_special_tokens) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const override;
  std::string id_to_token(int32_t id) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  size_t vocab_size() const override { return model_.pieces.size(); }
  bool is_special(int32_t id) const override;
  std::string kind() const override { return "sentencepiece"; }
  std::string space_marker() const override { return "\xE2\x96\x81"; }

  const SpmModel& model() const { return model_; }

  // A piece of the normalized text: [begin, end) bytes of it and the piece id (may be the unk id).
  struct NormalizedPiece {
    uint32_t begin, end;
    int32_t id;
  };
  // sentencepiece's normalizer on one segment: returns the normalized text; norm_to_orig gets, for each of
  // its bytes and one past the end, the byte offset in `text` it came from (empty for an empty result).
  std::string normalize(std::string_view text, std::vector<uint32_t>& norm_to_orig) const;
  // The model's segmentation of already-normalized text (before byte fallback).
  std::vector<NormalizedPiece> segment(std::string_view normalized) const;

 private:
  std::vector<NormalizedPiece> segment_bpe(std::string_view normalized) const;
  std::vector<NormalizedPiece> segment_unigram(std::string_view normalized) const;
  size_t match_user_defined(std::string_view normalized, size_t pos) const;
  int32_t piece_to_id(std::string_view piece) const;  // sentencepiece's PieceToId: unk id when absent
  void encode_segment(std::string_view text, uint32_t offset, Encoding& out) const;
  bool type_is(int32_t id, SpmPieceType type) const { return model_.pieces[id].type == type; }

  SpmModel model_;
  // sentencepiece keeps NORMAL, USER_DEFINED and UNUSED pieces in one table ("pieces") and the rest
  // (CONTROL, UNKNOWN, BYTE) in another ("reserved"); lookups try reserved first.
  std::unordered_map<std::string_view, int32_t> pieces_, reserved_;
  std::vector<std::string_view> user_defined_;  // longest first
  std::array<int32_t, 256> byte_ids_{};
  int32_t unk_id_ = 0;
  bool has_unused_ = false;
  float min_score_ = 0, max_score_ = 0;  // over NORMAL pieces (Unigram's unknown penalty, user-defined bonus)
  // Text split off before normalization (Hugging Face added tokens), longest first.
  std::vector<std::pair<std::string_view, int32_t>> special_texts_;
  std::array<bool, 256> special_first_byte_{};
};

}  // namespace fusellm::tok
