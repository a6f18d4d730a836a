// SentencePieceTokenizer: tables, normalizer, encode (special-text split, byte fallback, offsets), decode.
// The segmentation algorithms themselves are in sentencepiece_segment.cpp.
#include "fusellm/tokenizer/sentencepiece.hpp"

#include <algorithm>
#include <cfloat>

#include "fusellm/util/error.hpp"
#include "utf8.hpp"

namespace fusellm::tok {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // "▁" U+2581

// "<0x41>" → 0x41; -1 when `piece` is not of that form.
int parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (char c : piece.substr(3, 2)) {
    value <<= 4;
    if (c >= '0' && c <= '9') value |= c - '0';
    else if (c >= 'A' && c <= 'F') value |= c - 'A' + 10;
    else return -1;
  }
  return value;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(SpmModel model, std::string source) : model_(std::move(model)) {
  source_ = std::move(source);
  const auto& trainer = model_.trainer;
  if (trainer.model_type != SpmModelType::Bpe && trainer.model_type != SpmModelType::Unigram)
    fail("{}: SentencePiece model type {} is not supported (only BPE and UNIGRAM)", source_, to_string(trainer.model_type));
  if (!model_.normalizer.precompiled_charsmap.empty())
    fail("{}: SentencePiece normalizer '{}' has a precompiled_charsmap ({} bytes); only identity normalization is "
         "supported", source_, model_.normalizer.name, model_.normalizer.precompiled_charsmap.size());
  if (trainer.treat_whitespace_as_suffix)
    fail("{}: SentencePiece models with treat_whitespace_as_suffix are not supported", source_);

  byte_ids_.fill(-1);
  min_score_ = FLT_MAX;
  max_score_ = FLT_MIN;  // as sentencepiece initialises it (smallest positive float)
  for (size_t i = 0; i < model_.pieces.size(); ++i) {
    const SpmPiece& p = model_.pieces[i];
    const auto id = static_cast<int32_t>(i);
    switch (p.type) {
      case SpmPieceType::Normal:
        min_score_ = std::min(min_score_, p.score);
        max_score_ = std::max(max_score_, p.score);
        pieces_.emplace(p.piece, id);
        break;
      case SpmPieceType::UserDefined:
        user_defined_.push_back(p.piece);
        pieces_.emplace(p.piece, id);
        break;
      case SpmPieceType::Unused:
        has_unused_ = true;
        pieces_.emplace(p.piece, id);
        break;
      case SpmPieceType::Byte: {
        int value = parse_byte_piece(p.piece);
        if (value < 0) fail("{}: SentencePiece model: byte piece '{}' (id {}) is not of the form <0xXX>", source_, p.piece, i);
        byte_ids_[value] = id;
        reserved_.emplace(p.piece, id);
        break;
      }
      case SpmPieceType::Unknown:
        unk_id_ = id;
        reserved_.emplace(p.piece, id);
        special_texts_.emplace_back(p.piece, id);
        break;
      case SpmPieceType::Control:
        reserved_.emplace(p.piece, id);
        special_texts_.emplace_back(p.piece, id);
        break;
    }
  }
  auto longest_first = [](std::string_view a, std::string_view b) { return a.size() > b.size(); };
  std::stable_sort(user_defined_.begin(), user_defined_.end(), longest_first);
  std::stable_sort(special_texts_.begin(), special_texts_.end(),
                   [&](const auto& a, const auto& b) { return longest_first(a.first, b.first); });

  special_first_byte_.fill(false);
  for (const auto& special : special_texts_) special_first_byte_[static_cast<uint8_t>(special.first[0])] = true;

  const auto n = static_cast<int32_t>(model_.pieces.size());
  auto valid = [&](int32_t id) -> std::optional<int32_t> {
    return id >= 0 && id < n ? std::optional<int32_t>(id) : std::nullopt;
  };
  special_.unk = unk_id_;
  special_.bos = valid(trainer.bos_id);
  special_.eos = valid(trainer.eos_id);
  special_.pad = valid(trainer.pad_id);
  special_.add_bos = special_.bos.has_value();
  special_.add_eos = false;
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_file(const fs::path& model_file) {
  return std::make_unique<SentencePieceTokenizer>(load_spm_model(model_file), model_file.string());
}

int32_t SentencePieceTokenizer::piece_to_id(std::string_view piece) const {
  if (auto it = reserved_.find(piece); it != reserved_.end()) return it->second;
  if (auto it = pieces_.find(piece); it != pieces_.end()) return it->second;
  return unk_id_;
}

std::string SentencePieceTokenizer::normalize(std::string_view text, std::vector<uint32_t>& norm_to_orig) const {
  const SpmNormalizerSpec& spec = model_.normalizer;
  std::string out;
  out.reserve(text.size() + text.size() / 4 + 4);
  norm_to_orig.clear();
  norm_to_orig.reserve(out.capacity() + 1);

  // One unit of input: a user-defined symbol (kept whole, as sentencepiece's normalizer does), else one
  // character, or U+FFFD consuming one byte when the UTF-8 there is invalid.
  size_t pos = 0;
  auto next_char = [&](size_t at, std::string_view& ch) {
    if (!user_defined_.empty()) {
      if (size_t len = match_user_defined(text, at)) {
        ch = text.substr(at, len);
        return len;
      }
    }
    size_t len = utf8::valid_char_length(text, at);
    ch = len ? text.substr(at, len) : utf8::kReplacementChar;
    return len ? len : size_t{1};
  };
  auto append_space = [&](uint32_t consumed) {
    std::string_view sp = spec.escape_whitespaces ? kSpaceSymbol : std::string_view(" ");
    out.append(sp);
    norm_to_orig.insert(norm_to_orig.end(), sp.size(), consumed);
  };

  std::string_view ch;
  if (spec.remove_extra_whitespaces) {  // drop leading spaces
    while (pos < text.size()) {
      size_t len = next_char(pos, ch);
      if (ch != " ") break;
      pos += len;
    }
  }
  if (pos == text.size()) return out;
  if (spec.add_dummy_prefix) append_space(static_cast<uint32_t>(pos));

  bool prev_is_space = spec.remove_extra_whitespaces;
  while (pos < text.size()) {
    size_t len = next_char(pos, ch);
    if (prev_is_space && ch == " ") {
      // collapsed into the previous space
    } else {
      for (char c : ch) {
        if (spec.escape_whitespaces && c == ' ') {
          out.append(kSpaceSymbol);
          norm_to_orig.insert(norm_to_orig.end(), kSpaceSymbol.size(), static_cast<uint32_t>(pos));
        } else {
          out.push_back(c);
          norm_to_orig.push_back(static_cast<uint32_t>(pos));
        }
      }
      prev_is_space = spec.remove_extra_whitespaces && ch == " ";
    }
    pos += len;
  }
  auto consumed = static_cast<uint32_t>(pos);
  if (spec.remove_extra_whitespaces) {  // drop trailing spaces
    std::string_view sp = spec.escape_whitespaces ? kSpaceSymbol : std::string_view(" ");
    while (out.size() >= sp.size() && std::string_view(out).substr(out.size() - sp.size()) == sp) {
      size_t length = out.size() - sp.size();
      consumed = norm_to_orig[length];
      out.resize(length);
      norm_to_orig.resize(length);
    }
  }
  norm_to_orig.push_back(consumed);
  return out;
}

void SentencePieceTokenizer::encode_segment(std::string_view text, uint32_t offset, Encoding& out) const {
  std::vector<uint32_t> n2o;
  const std::string normalized = normalize(text, n2o);
  if (normalized.empty()) return;
  bool prev_is_unk = false;
  for (const NormalizedPiece& p : segment(normalized)) {
    const uint32_t begin = offset + n2o[p.begin], end = offset + n2o[p.end];
    const bool is_unk = p.id == unk_id_;
    if (is_unk && prev_is_unk && !model_.trainer.byte_fallback) {
      // sentencepiece merges a run of unknown pieces into one <unk> covering all of them.
      out.offsets.back().second = end;
    } else if (type_is(p.id, SpmPieceType::Control)) {  // no surface
      out.ids.push_back(p.id);
      out.offsets.emplace_back(begin, begin);
    } else if (p.id == unk_id_ && model_.trainer.byte_fallback) {
      for (uint32_t i = p.begin; i < p.end; ++i) {
        out.ids.push_back(byte_ids_[static_cast<uint8_t>(normalized[i])]);
        out.offsets.emplace_back(begin, i + 1 == p.end ? end : begin);
      }
    } else {
      out.ids.push_back(p.id);
      out.offsets.emplace_back(begin, end);
    }
    prev_is_unk = is_unk;
  }
}

Encoding SentencePieceTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  Encoding out;
  out.ids.reserve(text.size() / 3 + 4);
  out.offsets.reserve(out.ids.capacity());
  if (add_special_tokens && special_.add_bos && special_.bos) {
    out.ids.push_back(*special_.bos);
    out.offsets.emplace_back(0, 0);
  }
  // Hugging Face splits special-token text out first (leftmost, longest); each remaining segment is
  // normalized on its own, so it gets its own dummy prefix.
  size_t segment_start = 0;
  for (size_t pos = 0; pos < text.size();) {
    const std::pair<std::string_view, int32_t>* hit = nullptr;
    if (special_first_byte_[static_cast<uint8_t>(text[pos])]) {
      for (const auto& special : special_texts_) {
        if (text.compare(pos, special.first.size(), special.first) == 0) {
          hit = &special;
          break;
        }
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    encode_segment(text.substr(segment_start, pos - segment_start), static_cast<uint32_t>(segment_start), out);
    out.ids.push_back(hit->second);
    out.offsets.emplace_back(pos, pos + hit->first.size());
    pos += hit->first.size();
    segment_start = pos;
  }
  encode_segment(text.substr(segment_start), static_cast<uint32_t>(segment_start), out);
  if (add_special_tokens && special_.add_eos && special_.eos) {
    out.ids.push_back(*special_.eos);
    out.offsets.emplace_back(text.size(), text.size());
  }
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string out;
  std::string bytes;  // a run of byte pieces, fused then checked as UTF-8
  size_t byte_pieces = 0;
  auto flush_bytes = [&] {
    if (utf8::is_valid(bytes)) {
      out += bytes;
    } else {
      for (size_t i = 0; i < byte_pieces; ++i) out.append(utf8::kReplacementChar);
    }
    bytes.clear();
    byte_pieces = 0;
  };
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= model_.pieces.size())
      fail("{}: token id {} is out of range (vocabulary size {})", source_, id, model_.pieces.size());
    const std::string& piece = model_.pieces[id].piece;
    if (skip_special_tokens && is_special(id)) continue;
    if (type_is(id, SpmPieceType::Byte)) {
      bytes.push_back(static_cast<char>(parse_byte_piece(piece)));
      ++byte_pieces;
      continue;
    }
    if (byte_pieces) flush_bytes();
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
        out.push_back(' ');
        i += kSpaceSymbol.size();
      } else {
        out.push_back(piece[i++]);
      }
    }
  }
  if (byte_pieces) flush_bytes();
  if (model_.normalizer.add_dummy_prefix && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

std::string SentencePieceTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= model_.pieces.size())
    fail("{}: token id {} is out of range (vocabulary size {})", source_, id, model_.pieces.size());
  return model_.pieces[id].piece;
}

std::optional<int32_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  if (auto it = reserved_.find(token); it != reserved_.end()) return it->second;
  if (auto it = pieces_.find(token); it != pieces_.end()) return it->second;
  return std::nullopt;
}

bool SentencePieceTokenizer::is_special(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= model_.pieces.size()) return false;
  if (type_is(id, SpmPieceType::Control) || type_is(id, SpmPieceType::Unknown)) return true;
  return id == special_.bos || id == special_.eos || id == special_.unk || id == special_.pad;
}

}  // namespace fusellm::tok
