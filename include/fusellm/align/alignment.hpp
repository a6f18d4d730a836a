#pragma once
// Sequence alignment of a source (blending) tokenization onto a target (base) tokenization of the same text.
// Two methods:
//  * dtw:     FuseLLM's others.dtw, exactly — cost = Levenshtein of the marker-DELETED token strings, DP over
//             the full matrix, traceback ties diag, then up (source index − 1), then left (target index − 1).
//  * offsets: by the byte spans each token covers in the text (Tokenizer::encode_untrimmed's offsets, not
//             HF's trimmed ones), linear time; see align_by_offsets for the grouping rule.
// Both return, per target position, the contiguous range of source positions aligned to it and vice versa
// (the DTW path is monotone, so the official per-position lists are always contiguous ranges).
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fusellm::align {

struct Span {
  int32_t begin = 0, end = 0;  // [begin, end)
  int32_t size() const { return end - begin; }
  bool operator==(const Span& o) const { return begin == o.begin && end == o.end; }
};

struct TokenAlignment {
  int64_t cost = 0;                    // dtw: D[n, m]; offsets: 0
  std::vector<Span> target_to_source;  // official base_to_blending (len = #target)
  std::vector<Span> source_to_target;  // official blending_to_base (len = #source)
};

// The official list form: [[begin, …, end−1], …].
std::vector<std::vector<int32_t>> to_lists(const std::vector<Span>& spans);

// Reusable DTW state (buffers survive between calls, so aligning many pairs does not allocate per pair
// once warmed up). Not thread-safe: one aligner per thread.
class DtwAligner {
 public:
  // Empty input on either side: cost 0 and all spans empty (the official code is undefined there).
  TokenAlignment align(const std::vector<std::string>& source_tokens, std::string_view source_marker,
                       const std::vector<std::string>& target_tokens, std::string_view target_marker);

 private:
  std::vector<int32_t> cost_;    // [unique source][unique target]
  std::vector<int32_t> matrix_;  // (n+1) x (m+1)
  std::vector<int32_t> source_unique_, target_unique_;
  std::vector<uint32_t> target_chars_, target_offsets_;
  std::vector<uint16_t> lane_dist_;
};

TokenAlignment align_dtw(const std::vector<std::string>& source_tokens, std::string_view source_marker,
                         const std::vector<std::string>& target_tokens, std::string_view target_marker);

using ByteSpan = std::pair<uint32_t, uint32_t>;  // [begin, end) in the text, as tok::Encoding.offsets

// Alignment by byte spans, both tokenizations of the same text. Tokens are grouped into the smallest runs of
// consecutive source tokens and target tokens that cover the same text: a boundary of one side is the byte
// interval between the last end before it and the first begin after it (valid when no token crosses it), and
// a group closes where a boundary of each side overlap. Give it the bytes each token covers
// (encode_untrimmed): then the spans of each side tile the text and a 1:1 pair covers the same bytes. (The
// interval form still pairs trimmed spans such as "▁cat" = " cat" with "Ġcat" = "cat", but trimmed
// whitespace tokens cover nothing, so they mis-pair.) Every target position of a group maps to all source positions of the group and vice
// versa, so a position is 1:1 exactly when its token covers the same text as one token of the other side.
// Empty-span tokens (special tokens such as an appended EOS at the end of the text) pair 1:1 with an
// empty-span token at the same place on the other side; an unpaired one joins the next group (the last group
// at the end). Either side empty: all ranges empty.
TokenAlignment align_by_offsets(const std::vector<ByteSpan>& source_spans, const std::vector<ByteSpan>& target_spans);

}  // namespace fusellm::align
