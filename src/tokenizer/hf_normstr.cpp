// NormStr: text plus per-byte original spans (see hf_pipeline.hpp).
#include "hf_pipeline.hpp"
#include "hf_unicode.hpp"

namespace fusellm::tok::hf {

NormStr NormStr::from_original(std::string_view original, uint32_t base) {
  NormStr s;
  s.text.reserve(original.size());
  s.align.reserve(original.size());
  for (size_t i = 0; i < original.size();) {
    auto b0 = static_cast<unsigned char>(original[i]);
    uint32_t at = base + static_cast<uint32_t>(i);
    if (b0 < 0x80) {
      s.text.push_back(static_cast<char>(b0));
      s.align.push_back({at, at + 1});
      ++i;
      continue;
    }
    size_t n = unicode::valid_sequence_length(original, i);
    if (n) {
      s.append(original.substr(i, n), {at, at + static_cast<uint32_t>(n)});
      i += n;
    } else {
      // Invalid UTF-8: one U+FFFD per maximal invalid subsequence, as String::from_utf8_lossy does.
      size_t consumed = unicode::invalid_prefix_length(original, i);
      s.append("\xEF\xBF\xBD", {at, at + static_cast<uint32_t>(consumed)});
      i += consumed;
    }
  }
  return s;
}

Span NormStr::original_span(size_t b, size_t e) const {
  if (b >= e) {
    Span at = insertion_point(b);
    return {at.begin, at.begin};
  }
  return {align[b].begin, align[e - 1].end};
}

NormStr NormStr::slice(size_t b, size_t e) const {
  NormStr s;
  s.append(*this, b, e);
  return s;
}

Span NormStr::insertion_point(size_t i) const {
  if (i < align.size()) return align[i];
  if (!align.empty()) return align.back();
  return {0, 0};
}

void materialize_words(std::vector<NormStr>& pieces) {
  bool any = false;
  for (const auto& p : pieces) any = any || !p.word_ends.empty();
  if (!any) return;
  std::vector<NormStr> out;
  for (auto& p : pieces) {
    if (p.word_ends.empty()) {
      out.push_back(std::move(p));
      continue;
    }
    size_t begin = 0;
    for (uint32_t end : p.word_ends) {
      if (end > begin) out.push_back(p.slice(begin, end));
      begin = end;
    }
  }
  pieces = std::move(out);
}

}  // namespace fusellm::tok::hf
