// The two sentencepiece segmentation algorithms on normalized text, reproducing libsentencepiece's
// bpe_model.cc and unigram_model.cc (EncodeOptimized) decision for decision, so ids match exactly.
#include <algorithm>
#include <functional>
#include <queue>

#include "fusellm/tokenizer/sentencepiece.hpp"

namespace fusellm::tok {
namespace {

// Bytes in the UTF-8 character whose lead byte is `c` (sentencepiece's OneCharLen: continuation bytes
// count as 1). The normalized text is valid UTF-8, so this only ever sees lead bytes.
size_t one_char_length(char c) {
  static constexpr unsigned char kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[static_cast<uint8_t>(c) >> 4];
}

}  // namespace

std::vector<SentencePieceTokenizer::NormalizedPiece> SentencePieceTokenizer::segment(std::string_view normalized) const {
  if (normalized.empty()) return {};
  return model_.trainer.model_type == SpmModelType::Bpe ? segment_bpe(normalized) : segment_unigram(normalized);
}

size_t SentencePieceTokenizer::match_user_defined(std::string_view s, size_t pos) const {
  for (std::string_view sym : user_defined_) {  // longest first
    if (s.compare(pos, sym.size(), sym) == 0) return sym.size();
  }
  return 0;
}

// BPE: start from characters (user-defined symbols whole and frozen), repeatedly merge the adjacent pair
// whose concatenation is the piece with the highest score (ties: leftmost), using a priority queue with
// lazy invalidation of stale pairs. Pairs that produce UNUSED pieces are merged but re-split at the end.
std::vector<SentencePieceTokenizer::NormalizedPiece> SentencePieceTokenizer::segment_bpe(std::string_view s) const {
  struct Symbol {
    uint32_t begin, length;
    int32_t prev, next;
    bool frozen;
  };
  struct Pair {
    float score;
    int32_t left, right;
    uint32_t length;
  };
  struct Lower {  // priority_queue pops the greatest: highest score, then smallest left index
    bool operator()(const Pair& a, const Pair& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };

  std::vector<Symbol> symbols;
  symbols.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    size_t len = match_user_defined(s, pos);
    const bool frozen = len > 0;
    if (!frozen) len = std::min(one_char_length(s[pos]), s.size() - pos);
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({static_cast<uint32_t>(pos), static_cast<uint32_t>(len), index - 1,
                       pos + len == s.size() ? -1 : index + 1, frozen});
    pos += len;
  }

  std::vector<Pair> storage;
  storage.reserve(symbols.size());
  std::priority_queue<Pair, std::vector<Pair>, Lower> agenda(Lower{}, std::move(storage));
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> unused_splits;
  auto view = [&](const Symbol& sym) { return s.substr(sym.begin, sym.length); };
  auto maybe_add_pair = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
    const std::string_view merged = s.substr(symbols[left].begin, symbols[left].length + symbols[right].length);
    auto it = pieces_.find(merged);
    if (it == pieces_.end()) return;
    agenda.push({model_.pieces[it->second].score, left, right, static_cast<uint32_t>(merged.size())});
    if (has_unused_ && model_.pieces[it->second].type == SpmPieceType::Unused)
      unused_splits[merged] = {view(symbols[left]), view(symbols[right])};
  };
  for (size_t i = 1; i < symbols.size(); ++i) maybe_add_pair(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    // Stale: one side was merged away or grew since this pair was queued.
    if (left.length == 0 || right.length == 0 || left.length + right.length != top.length) continue;
    left.length += right.length;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.length = 0;
    maybe_add_pair(left.prev, top.left);
    maybe_add_pair(top.left, left.next);
  }

  std::vector<NormalizedPiece> out;
  out.reserve(symbols.size());
  // Pieces come out contiguous and in order; positions are counted, not taken from the views, because
  // the unused_splits views may point at another occurrence of the same text.
  uint32_t position = 0;
  std::function<void(std::string_view)> emit = [&](std::string_view piece) {
    const int32_t id = piece_to_id(piece);
    if (has_unused_ && model_.pieces[id].type == SpmPieceType::Unused) {
      if (auto it = unused_splits.find(piece); it != unused_splits.end()) {
        emit(it->second.first);
        emit(it->second.second);
        return;
      }
    }
    out.push_back({position, position + static_cast<uint32_t>(piece.size()), id});
    position += static_cast<uint32_t>(piece.size());
  };
  for (int32_t i = 0; i >= 0; i = symbols[i].next) emit(view(symbols[i]));
  return out;
}

// Unigram: Viterbi over all pieces that match at each character boundary, maximising the summed piece
// scores; a character no piece starts with becomes <unk> with score (min score - 10); user-defined
// pieces score length * max_score - 0.1 so they always win; UNUSED pieces are never used.
std::vector<SentencePieceTokenizer::NormalizedPiece> SentencePieceTokenizer::segment_unigram(std::string_view s) const {
  constexpr float kUnkPenalty = 10.0f;
  struct Best {
    int32_t id = -1;
    float score = 0.0f;
    int32_t starts_at = -1;
  };
  const float unk_score = min_score_ - kUnkPenalty;
  const size_t size = s.size();
  size_t max_piece_length = 0;
  for (const auto& [piece, id] : pieces_) max_piece_length = std::max(max_piece_length, piece.size());

  std::vector<Best> best(size + 1);
  for (size_t start = 0; start < size;) {
    const float score_here = best[start].score;
    const size_t char_len = std::min(one_char_length(s[start]), size - start);
    bool has_single_char_piece = false;
    const size_t max_end = std::min(size, start + max_piece_length);
    for (size_t end = start + 1; end <= max_end; ++end) {
      auto it = pieces_.find(s.substr(start, end - start));
      if (it == pieces_.end()) continue;
      const int32_t id = it->second;
      const SpmPiece& piece = model_.pieces[id];
      if (piece.type == SpmPieceType::Unused) continue;
      const size_t length = end - start;
      // In double, as sentencepiece's `length * max_score_ - 0.1` makes this whole expression double.
      const double score = piece.type == SpmPieceType::UserDefined
                               ? static_cast<double>(static_cast<float>(length) * max_score_) - 0.1
                               : static_cast<double>(piece.score);
      const double candidate = score + static_cast<double>(score_here);
      Best& target = best[end];
      if (target.starts_at == -1 || candidate > static_cast<double>(target.score))
        target = {id, static_cast<float>(candidate), static_cast<int32_t>(start)};
      if (length == char_len) has_single_char_piece = true;
    }
    if (!has_single_char_piece) {
      Best& target = best[start + char_len];
      const float candidate = unk_score + score_here;
      if (target.starts_at == -1 || candidate > target.score) target = {unk_id_, candidate, static_cast<int32_t>(start)};
    }
    start += char_len;
  }

  std::vector<NormalizedPiece> out;
  for (size_t end = size; end > 0;) {
    const Best& node = best[end];
    out.push_back({static_cast<uint32_t>(node.starts_at), static_cast<uint32_t>(end), node.id});
    end = static_cast<size_t>(node.starts_at);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace fusellm::tok
