// Added-token matching (see hf_added_tokens.hpp).
#include "hf_added_tokens.hpp"

#include <algorithm>

#include "hf_unicode.hpp"

namespace fusellm::tok::hf {
namespace {

// The code point that ends text[0, end) (valid UTF-8), and where it starts.
char32_t last_char(std::string_view text, size_t end, size_t& start) {
  start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  return unicode::decode_at(text, i);
}

bool is_word_char(char32_t cp) { return cp == '_' || unicode::is_alphanumeric(cp); }

}  // namespace

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer)
    : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    by_id_[t.id] = i;
    by_content_[t.content] = i;
    std::string pattern = t.content;
    if (t.normalized && normalizer) {
      NormStr s = NormStr::from_original(t.content, 0);
      normalizer->normalize(s);
      pattern = s.text;
    }
    patterns_.push_back(pattern);
    if (pattern.empty()) continue;
    int kind = t.normalized ? 1 : 0;
    auto first = static_cast<unsigned char>(pattern[0]);
    candidates_[kind][first].push_back(i);
    if (pattern.size() == 1) one_byte_[kind][first] = true;
    else second_bytes_[kind][first].set(static_cast<unsigned char>(pattern[1]));
    any_[kind] = true;
  }
  for (auto& per_kind : candidates_)
    for (auto& list : per_kind)
      std::stable_sort(list.begin(), list.end(),
                       [&](size_t a, size_t b) { return patterns_[a].size() > patterns_[b].size(); });
}

std::vector<AddedVocabulary::Piece> AddedVocabulary::split(std::string_view text, bool normalized) const {
  std::vector<Piece> pieces;
  int kind = normalized ? 1 : 0;
  size_t done = 0;  // end of the last piece emitted
  if (any_[kind]) {
    for (size_t i = 0; i < text.size();) {
      const AddedToken* match = nullptr;
      size_t length = 0;
      auto first = static_cast<unsigned char>(text[i]);
      bool possible = one_byte_[kind][first] ||
                      (i + 1 < text.size() && second_bytes_[kind][first].test(static_cast<unsigned char>(text[i + 1])));
      if (!possible) {
        ++i;
        continue;
      }
      for (size_t index : candidates_[kind][first]) {
        const std::string& c = patterns_[index];
        if (c.size() > text.size() - i) continue;
        size_t k = 1;  // the first byte matched already
        while (k < c.size() && c[k] == text[i + k]) ++k;
        if (k == c.size()) {
          match = &tokens_[index];
          length = c.size();
          break;
        }
      }
      if (!match) {
        ++i;
        continue;
      }
      size_t start = i, stop = i + length;
      size_t next = stop;  // matching resumes after the match itself, as aho-corasick's iterator does
      if (match->single_word) {
        size_t at;
        bool word_before = start > 0 && is_word_char(last_char(text, start, at));
        size_t after = stop;
        bool word_after = stop < text.size() && is_word_char(unicode::decode_at(text, after));
        if (word_before || word_after) {  // discarded; matching resumes after it
          i = next;
          continue;
        }
      }
      if (match->lstrip) {
        while (start > done) {
          size_t at;
          if (!unicode::is_whitespace(last_char(text, start, at))) break;
          start = at;
        }
      }
      if (match->rstrip) {
        while (stop < text.size()) {
          size_t after = stop;
          if (!unicode::is_whitespace(unicode::decode_at(text, after))) break;
          stop = after;
        }
      }
      start = std::max(start, done);
      if (start > done) pieces.push_back({-1, done, start});
      pieces.push_back({match->id, start, stop});
      done = stop;
      i = next;
    }
  }
  if (done < text.size()) pieces.push_back({-1, done, text.size()});
  return pieces;
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::by_content(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace fusellm::tok::hf
