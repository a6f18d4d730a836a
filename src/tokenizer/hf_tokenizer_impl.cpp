// The Hugging Face tokenizer pipeline (see hf_tokenizer_impl.hpp).
#include "hf_tokenizer_impl.hpp"

#include <xxhash.h>

#include <algorithm>

#include "fusellm/util/error.hpp"
#include "hf_unicode.hpp"

namespace fusellm::tok::hf {

std::string hash_files(const std::vector<std::pair<std::string, const std::string*>>& named_contents) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  for (const auto& [name, content] : named_contents) {
    XXH3_64bits_update(state, name.data(), name.size());
    XXH3_64bits_update(state, "", 1);
    unsigned char size[8];
    for (int k = 0; k < 8; ++k) size[k] = static_cast<unsigned char>(static_cast<uint64_t>(content->size()) >> (8 * k));
    XXH3_64bits_update(state, size, sizeof(size));
    XXH3_64bits_update(state, content->data(), content->size());
  }
  XXH64_hash_t h = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return fmt::format("{:016x}", static_cast<unsigned long long>(h));
}

HfTokenizer::HfTokenizer(HfParts parts) : parts_(std::move(parts)) {
  vocab_size_ = parts_.model->id_limit();
  for (const auto& t : parts_.added.tokens()) vocab_size_ = std::max(vocab_size_, static_cast<size_t>(t.id) + 1);
  source_ = parts_.source;
  hash_ = parts_.hash;
  if (auto unk = parts_.model->options().unk_token) special_.unk = parts_.model->token_to_id(*unk);
  bool trims = false;
  for (const auto& step : parts_.post) trims = trims || step.kind == PostStep::Kind::ByteLevelTrim;
  if (trims) {
    // 'Ġ' (U+0120) is the byte-level space.
    auto is_space = [](char32_t cp) { return cp == 0x120 || unicode::is_whitespace(cp); };
    edge_spaces_.assign(vocab_size_, {0, 0});
    std::vector<char32_t> chars;
    for (size_t id = 0; id < vocab_size_; ++id) {
      const std::string* token = token_string(static_cast<int32_t>(id));
      if (!token) continue;
      chars.clear();
      for (size_t k = 0; k < token->size();) chars.push_back(unicode::decode_at(*token, k));
      uint16_t leading = 0, trailing = 0;
      while (leading < chars.size() && is_space(chars[leading])) ++leading;
      while (trailing < chars.size() && is_space(chars[chars.size() - 1 - trailing])) ++trailing;
      edge_spaces_[id] = {leading, trailing};
    }
  }
  // BOS/EOS: what the single-sequence template puts before and after the text.
  for (const auto& step : parts_.post) {
    if (step.kind != PostStep::Kind::Template) continue;
    bool before = true;
    for (const auto& item : step.items) {
      if (item.empty()) {
        before = false;
      } else if (item.size() == 1) {
        (before ? special_.bos : special_.eos) = item[0];
        (before ? special_.add_bos : special_.add_eos) = true;
      }
    }
  }
}

const std::string* HfTokenizer::token_string(int32_t id) const {
  if (const AddedToken* t = parts_.added.by_id(id)) return &t->content;
  return parts_.model->id_to_token(id);
}

std::string HfTokenizer::id_to_token(int32_t id) const {
  const std::string* s = token_string(id);
  if (!s) fail("{}: token id {} is out of range (vocabulary size {})", source_, id, vocab_size_);
  return *s;
}

std::optional<int32_t> HfTokenizer::token_to_id(std::string_view token) const {
  if (const AddedToken* t = parts_.added.by_content(token)) return t->id;
  return parts_.model->token_to_id(token);
}

bool HfTokenizer::is_special(int32_t id) const {
  const AddedToken* t = parts_.added.by_id(id);
  return t && t->special;
}

void HfTokenizer::encode_text(NormStr piece, Encoding& out) const {
  if (piece.empty()) return;
  std::vector<NormStr> words;
  words.push_back(std::move(piece));
  if (parts_.pre_tokenizer) parts_.pre_tokenizer->pre_tokenize(words);
  thread_local std::vector<BpeToken> tokens;
  auto run_model = [&](const NormStr& word, size_t begin, size_t end) {
    tokens.clear();
    parts_.model->tokenize(std::string_view(word.text).substr(begin, end - begin), tokens);
    for (const auto& t : tokens) {
      Span span = word.original_span(begin + t.begin, begin + t.end);
      out.ids.push_back(t.id);
      out.offsets.emplace_back(span.begin, span.end);
    }
  };
  for (const auto& word : words) {
    if (word.word_ends.empty()) {
      run_model(word, 0, word.text.size());
      continue;
    }
    size_t begin = 0;
    for (uint32_t end : word.word_ends) {
      if (end > begin) run_model(word, begin, end);
      begin = end;
    }
  }
}

Encoding HfTokenizer::encode_with(std::string_view text, bool add_special_tokens, bool trim_offsets) const {
  Encoding enc;
  NormStr input = NormStr::from_original(text, 0);
  auto push_added = [&](int32_t id, Span span) {
    enc.ids.push_back(id);
    enc.offsets.emplace_back(span.begin, span.end);
  };
  // 1. Added tokens that match the raw text; 2. normalize what is between them; 3. added tokens that
  // match the normalized text; 4. pre-tokenize and run the model on the rest.
  for (const auto& raw : parts_.added.split(input.text, false)) {
    if (raw.id >= 0) {
      push_added(raw.id, input.original_span(raw.begin, raw.end));
      continue;
    }
    NormStr piece = raw.begin == 0 && raw.end == input.text.size() ? std::move(input) : input.slice(raw.begin, raw.end);
    if (parts_.normalizer) parts_.normalizer->normalize(piece);
    auto normalized_pieces = parts_.added.split(piece.text, true);
    if (normalized_pieces.size() == 1 && normalized_pieces[0].id < 0) {
      encode_text(std::move(piece), enc);
      continue;
    }
    for (const auto& p : normalized_pieces) {
      if (p.id >= 0) push_added(p.id, piece.original_span(p.begin, p.end));
      else encode_text(piece.slice(p.begin, p.end), enc);
    }
  }
  for (const auto& step : parts_.post) {
    if (step.kind == PostStep::Kind::ByteLevelTrim) {
      if (trim_offsets) trim_byte_level_offsets(enc, step.add_prefix_space);
    } else if (add_special_tokens) {
      Encoding with;
      auto end = static_cast<uint32_t>(text.size());
      bool before = true;
      for (const auto& item : step.items) {
        if (item.empty()) {
          with.ids.insert(with.ids.end(), enc.ids.begin(), enc.ids.end());
          with.offsets.insert(with.offsets.end(), enc.offsets.begin(), enc.offsets.end());
          before = false;
          continue;
        }
        for (int32_t id : item) {
          with.ids.push_back(id);
          with.offsets.emplace_back(before ? 0 : end, before ? 0 : end);
        }
      }
      enc = std::move(with);
    }
  }
  return enc;
}

// ByteLevel post-processing with trim_offsets: offsets leave out the spaces a token starts or ends with.
void HfTokenizer::trim_byte_level_offsets(Encoding& enc, bool add_prefix_space) const {
  for (size_t i = 0; i < enc.ids.size(); ++i) {
    auto id = static_cast<size_t>(enc.ids[i]);
    if (id >= edge_spaces_.size()) continue;
    size_t leading = edge_spaces_[id].first, trailing = edge_spaces_[id].second;
    auto& [begin, end] = enc.offsets[i];
    if (leading > 0) {
      bool is_first = i == 0 || begin == 0;
      if (is_first && add_prefix_space && leading == 1) leading = 0;
      begin = std::min<uint32_t>(begin + static_cast<uint32_t>(leading), end);
    }
    if (trailing > 0 && end >= trailing) end = std::max<uint32_t>(end - static_cast<uint32_t>(trailing), begin);
  }
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* s = token_string(id);
    if (!s) continue;  // as the Rust crate: ids without a token are skipped
    if (skip_special_tokens && is_special(id)) continue;
    tokens.push_back(*s);
  }
  if (!parts_.decoder) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
    return joined;
  }
  parts_.decoder->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

}  // namespace fusellm::tok::hf
