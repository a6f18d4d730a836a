// Chunker: common token boundaries of all tokenizers, the largest cut that fits every budget, verified by
// re-tokenizing the chunk on its own, with back-off and a character-boundary fallback.
#include "fusellm/data/chunker.hpp"

#include <algorithm>
#include <optional>

#include "fusellm/util/error.hpp"

namespace fusellm::data {

namespace {

bool is_blank(std::string_view s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos; }

// True when byte position p of text starts a UTF-8 character (or is the end).
bool is_char_start(std::string_view text, size_t p) {
  return p == 0 || p >= text.size() || (static_cast<uint8_t>(text[p]) & 0xC0) != 0x80;
}

size_t next_char(std::string_view text, size_t p) {
  do ++p;
  while (p < text.size() && !is_char_start(text, p));
  return std::min(p, text.size());
}

size_t char_floor(std::string_view text, size_t p) {
  p = std::min(p, text.size());
  while (p > 0 && !is_char_start(text, p)) --p;
  return p;
}

}  // namespace

int64_t chunk_token_budget(int64_t max_length, int64_t margin, bool add_bos, bool add_eos) {
  return max_length - margin - (add_bos ? 1 : 0) - (add_eos ? 1 : 0);
}

void ChunkerStats::merge(const ChunkerStats& other) {
  documents += other.documents;
  skipped_documents += other.skipped_documents;
  chunks += other.chunks;
  forced_cuts += other.forced_cuts;
  backoffs += other.backoffs;
  text_bytes += other.text_bytes;
  if (max_tokens.size() < other.max_tokens.size()) max_tokens.resize(other.max_tokens.size(), 0);
  for (size_t i = 0; i < other.max_tokens.size(); ++i) max_tokens[i] = std::max(max_tokens[i], other.max_tokens[i]);
}

std::vector<size_t> token_boundaries(const tok::Encoding& encoding, std::string_view text) {
  std::vector<size_t> out{0};
  size_t covered = 0;  // end of everything seen so far
  for (const auto& [begin, end] : encoding.offsets) {
    // Empty spans (byte pieces before a character's last, whitespace-only tokens after offset trimming,
    // added specials) carry no position of their own.
    if (begin == end) continue;
    if (begin >= covered && covered > out.back() && is_char_start(text, covered)) out.push_back(covered);
    covered = std::max<size_t>(covered, end);
  }
  if (text.size() > out.back()) out.push_back(text.size());
  return out;
}

// One tokenization of text[begin, end) per tokenizer, in document coordinates.
struct Chunker::Window {
  size_t begin = 0, end = 0;
  size_t trusted_end = 0;                   // boundaries and counts past this are not trusted (end of a cut window)
  std::vector<std::vector<size_t>> anchors; // per tokenizer: where each token begins, sorted
  std::vector<size_t> common;               // boundaries of every tokenizer in [begin, trusted_end]
};

// The state of splitting one document.
class Chunker::DocumentSplitter {
 public:
  DocumentSplitter(const Chunker& chunker, std::string_view text, std::string_view name, ChunkerStats& stats)
      : chunker_(chunker), tokenizers_(chunker.tokenizers_), text_(text), name_(name), stats_(stats) {}

  std::vector<ChunkSpan> run() {
    std::vector<ChunkSpan> chunks;
    load_window(0);
    for (size_t pos = 0; pos < text_.size();) {
      ChunkSpan chunk;
      chunk.begin = pos;
      bool rest_fits = false;
      size_t limit = estimate_limit(pos, rest_fits);
      if (window_.end < text_.size() && limit >= window_.trusted_end && window_.begin != pos) {
        load_window(pos);  // the chunk may reach past what this window can tell: start a new one here
        limit = estimate_limit(pos, rest_fits);
      }
      if (auto cut = cut_at_common(pos, limit, rest_fits, chunk.tokens)) {
        chunk.end = *cut;
      } else {
        chunk.end = forced_cut(pos, limit, chunk.tokens);
        chunk.forced = true;
        ++stats_.forced_cuts;
      }
      for (size_t t = 0; t < chunk.tokens.size(); ++t)
        stats_.max_tokens[t] = std::max(stats_.max_tokens[t], chunk.tokens[t]);
      pos = chunk.end;
      chunks.push_back(std::move(chunk));
    }
    stats_.chunks += chunks.size();
    return chunks;
  }

 private:
  void load_window(size_t begin) {
    const size_t size = chunker_.options_.window_bytes;
    window_.begin = begin;
    window_.end = text_.size() - begin <= size ? text_.size() : char_floor(text_, begin + size);
    if (window_.end <= begin) window_.end = next_char(text_, begin);
    window_.trusted_end = window_.end == text_.size() ? window_.end : begin + (window_.end - begin) * 7 / 8;
    const std::string_view slice = text_.substr(begin, window_.end - begin);
    window_.anchors.assign(tokenizers_.size(), {});
    for (size_t t = 0; t < tokenizers_.size(); ++t) {
      const tok::Encoding encoding = tokenizers_[t].tokenizer->encode(slice, false);
      auto& anchors = window_.anchors[t];
      anchors.reserve(encoding.offsets.size());
      for (const auto& span : encoding.offsets) anchors.push_back(begin + span.first);
      if (!std::is_sorted(anchors.begin(), anchors.end())) std::sort(anchors.begin(), anchors.end());
      std::vector<size_t> bounds = token_boundaries(encoding, slice);
      for (size_t& b : bounds) b += begin;
      while (!bounds.empty() && bounds.back() > window_.trusted_end) bounds.pop_back();
      if (t == 0) {
        window_.common = std::move(bounds);
      } else {
        std::vector<size_t> both;
        std::set_intersection(window_.common.begin(), window_.common.end(), bounds.begin(), bounds.end(),
                              std::back_inserter(both));
        window_.common = std::move(both);
      }
    }
  }

  // The furthest cut the window's tokenizations allow from pos: a cut at p < end of document fits a
  // tokenizer when fewer than budget + 1 of its tokens begin in [pos, p). rest_fits: the whole remainder
  // of the document (every token beginning at or after pos) fits every tokenizer.
  size_t estimate_limit(size_t pos, bool& rest_fits) const {
    size_t limit = window_.end;
    rest_fits = window_.end == text_.size();
    for (size_t t = 0; t < tokenizers_.size(); ++t) {
      const auto& anchors = window_.anchors[t];
      const size_t first = std::lower_bound(anchors.begin(), anchors.end(), pos) - anchors.begin();
      const size_t over = first + static_cast<size_t>(tokenizers_[t].budget);
      if (over < anchors.size()) {
        limit = std::min(limit, anchors[over]);
        rest_fits = false;
      }
    }
    return limit;
  }

  // Tokenizes text[begin, end) with every tokenizer; true when each count is within its budget.
  bool fits(size_t begin, size_t end, std::vector<int64_t>& tokens) const {
    const std::string_view chunk = text_.substr(begin, end - begin);
    tokens.assign(tokenizers_.size(), 0);
    for (size_t t = 0; t < tokenizers_.size(); ++t) {
      tokens[t] = static_cast<int64_t>(tokenizers_[t].tokenizer->encode(chunk, false).ids.size());
      if (tokens[t] > tokenizers_[t].budget) return false;
    }
    return true;
  }

  // The largest common boundary in (pos, limit] whose chunk verifies; nullopt when none does.
  std::optional<size_t> cut_at_common(size_t pos, size_t limit, bool rest_fits, std::vector<int64_t>& tokens) {
    const auto& common = window_.common;
    const size_t first = std::upper_bound(common.begin(), common.end(), pos) - common.begin();
    size_t idx = std::upper_bound(common.begin(), common.end(), std::min(limit, window_.trusted_end)) - common.begin();
    if (idx > first && common[idx - 1] == text_.size() && !rest_fits) --idx;  // the end needs all tokens to fit
    // Walk back a few boundaries (the usual case: at most one), then bisect.
    constexpr int kLinearTries = 4;
    for (int tries = 0; idx > first && tries < kLinearTries; ++tries, --idx) {
      if (fits(pos, common[idx - 1], tokens)) return common[idx - 1];
      ++stats_.backoffs;
    }
    if (idx <= first) return std::nullopt;
    // common[idx - 1] is the largest not yet tried; common[idx] failed. Find the last that fits, as if
    // fitting were monotone (it nearly is); whatever is returned has been verified.
    size_t lo = first, hi = idx;  // answer in [lo, hi): index + 1 of the best fitting boundary, lo = none
    std::optional<size_t> best;
    std::vector<int64_t> best_tokens;
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (fits(pos, common[mid], tokens)) {
        best = common[mid], best_tokens = tokens, lo = mid + 1;
      } else {
        ++stats_.backoffs;
        hi = mid;
      }
    }
    if (best) tokens = std::move(best_tokens);
    return best;
  }

  // No common boundary fits: the largest character boundary that does, found by bisection from the limit.
  size_t forced_cut(size_t pos, size_t limit, std::vector<int64_t>& tokens) {
    size_t hi = char_floor(text_, std::min(limit, window_.trusted_end));
    if (hi <= pos) hi = next_char(text_, pos);
    if (fits(pos, hi, tokens)) return hi;
    size_t lo = pos;  // lo fits (or is pos), hi does not
    std::vector<int64_t> lo_tokens;
    while (next_char(text_, lo) < hi) {
      size_t mid = char_floor(text_, lo + (hi - lo) / 2);
      if (mid <= lo) mid = next_char(text_, lo);
      if (fits(pos, mid, tokens)) {
        lo = mid, lo_tokens = tokens;
      } else {
        hi = mid;
      }
    }
    if (lo == pos) {
      std::string budgets;
      for (const auto& t : tokenizers_) budgets += fmt::format("{}{}: {}", budgets.empty() ? "" : ", ", t.name, t.budget);
      fail("{}: byte {}: not even one character fits the token budgets ({}); raise data.max_length", name_, pos, budgets);
    }
    tokens = std::move(lo_tokens);
    return lo;
  }

  const Chunker& chunker_;
  const std::vector<ChunkTokenizer>& tokenizers_;
  std::string_view text_;
  std::string_view name_;
  ChunkerStats& stats_;
  Window window_;
};

Chunker::Chunker(std::vector<ChunkTokenizer> tokenizers, ChunkerOptions options)
    : tokenizers_(std::move(tokenizers)), options_(options) {
  FUSELLM_CHECK(!tokenizers_.empty(), "chunker: no tokenizer given");
  FUSELLM_CHECK(options_.window_bytes >= 64, "chunker: window of {} bytes is too small", options_.window_bytes);
  for (const auto& t : tokenizers_) {
    FUSELLM_CHECK(t.tokenizer != nullptr, "chunker: tokenizer '{}' is not loaded", t.name);
    FUSELLM_CHECK(t.budget >= kMinChunkBudget,
                  "{}: {} tokens per chunk after margin and special tokens; need at least {} (raise data.max_length "
                  "or lower data.margin)",
                  t.name, t.budget, kMinChunkBudget);
  }
}

std::vector<ChunkSpan> Chunker::split(std::string_view text, ChunkerStats& stats, std::string_view doc_name) const {
  if (stats.max_tokens.size() < tokenizers_.size()) stats.max_tokens.resize(tokenizers_.size(), 0);
  if (is_blank(text)) {
    ++stats.skipped_documents;
    return {};
  }
  ++stats.documents;
  stats.text_bytes += text.size();
  return DocumentSplitter(*this, text, doc_name, stats).run();
}

}  // namespace fusellm::data
