// DTW token alignment, reproducing FuseLLM's others.dtw exactly. Speed comes from (1) computing each
// distinct (source string, target string) distance once, 16 source strings at a time with the SIMD
// bit-parallel kernel, (2) an int32 DP (costs are integers, so float64 sums in the official code compare
// identically), (3) buffers reused across calls.
#include <algorithm>
#include <climits>
#include <unordered_map>

#include "fusellm/align/alignment.hpp"
#include "fusellm/align/levenshtein.hpp"
#include "fusellm/align/vocab_map.hpp"
#include "fusellm/util/error.hpp"

namespace fusellm::align {

std::vector<std::vector<int32_t>> to_lists(const std::vector<Span>& spans) {
  std::vector<std::vector<int32_t>> out(spans.size());
  for (size_t k = 0; k < spans.size(); ++k)
    for (int32_t v = spans[k].begin; v < spans[k].end; ++v) out[k].push_back(v);
  return out;
}

namespace {

constexpr int32_t kInf = 1 << 29;

// Distinct marker-deleted strings of one side, as code points; `index[k]` = distinct id of token k.
struct Distinct {
  std::vector<CodePoints> strings;
  void build(const std::vector<std::string>& tokens, std::string_view marker, std::vector<int32_t>& index) {
    std::unordered_map<std::string, int32_t> seen;
    seen.reserve(tokens.size() * 2);
    index.resize(tokens.size());
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string s = replace_all(tokens[k], marker, "");
      auto [it, inserted] = seen.emplace(std::move(s), static_cast<int32_t>(strings.size()));
      if (inserted) strings.push_back(to_code_points(it->first));
      index[k] = it->second;
    }
  }
};

}  // namespace

TokenAlignment DtwAligner::align(const std::vector<std::string>& source_tokens, std::string_view source_marker,
                                 const std::vector<std::string>& target_tokens, std::string_view target_marker) {
  TokenAlignment out;
  const size_t n = source_tokens.size(), m = target_tokens.size();
  out.source_to_target.assign(n, Span{});
  out.target_to_source.assign(m, Span{});
  if (n == 0 || m == 0) return out;
  FUSELLM_CHECK((n + 1) * (m + 1) <= (size_t{1} << 31),
                "dtw: {} x {} tokens is too large a matrix (at most 2^31 cells)", n, m);

  // 1. Distance of every distinct pair.
  Distinct src, tgt;
  src.build(source_tokens, source_marker, source_unique_);
  tgt.build(target_tokens, target_marker, target_unique_);
  const size_t us = src.strings.size(), ut = tgt.strings.size();
  cost_.resize(us * ut);
  DenseAlphabet alphabet;
  std::vector<int32_t> batched, single;
  for (size_t s = 0; s < us; ++s) {
    const auto& p = src.strings[s];
    if (!p.empty() && p.size() <= kBatchMaxPattern) {
      batched.push_back(static_cast<int32_t>(s));
      for (uint32_t cp : p) alphabet.add(cp);
    } else {
      single.push_back(static_cast<int32_t>(s));
    }
  }
  if (!batched.empty()) {
    // All distinct target strings back to back in dense ids, scanned once per batch of 16 source strings.
    target_chars_.clear();
    target_offsets_.assign(1, 0);
    for (size_t t = 0; t < ut; ++t) {
      for (uint32_t cp : tgt.strings[t]) target_chars_.push_back(alphabet.find(cp));
      target_offsets_.push_back(static_cast<uint32_t>(target_chars_.size()));
    }
    std::vector<std::vector<uint32_t>> pattern_dense(kBatchLanes);
    PatternBatch batch(alphabet.size());
    std::vector<const std::vector<uint32_t>*> patterns;
    lane_dist_.resize(ut * kBatchLanes);
    for (size_t first = 0; first < batched.size(); first += kBatchLanes) {
      const size_t lanes = std::min(kBatchLanes, batched.size() - first);
      patterns.clear();
      for (size_t lane = 0; lane < lanes; ++lane) {
        pattern_dense[lane] = alphabet.encode(src.strings[batched[first + lane]]);
        patterns.push_back(&pattern_dense[lane]);
      }
      batch.set(patterns);
      batch.distances_many(target_chars_.data(), target_offsets_.data(), ut, lane_dist_.data());
      for (size_t lane = 0; lane < lanes; ++lane) {
        int32_t* row = cost_.data() + batched[first + lane] * ut;
        for (size_t t = 0; t < ut; ++t) row[t] = lane_dist_[t * kBatchLanes + lane];
      }
    }
  }
  for (int32_t s : single)
    for (size_t t = 0; t < ut; ++t) cost_[s * ut + t] = levenshtein(src.strings[s], tgt.strings[t]);

  // 2. D[i+1][j+1] = cost + min(D[i][j+1], D[i+1][j], D[i][j]); D[0][0] = 0, rest of row/column 0 = inf.
  const size_t w = m + 1;
  matrix_.resize((n + 1) * w);
  int32_t* d = matrix_.data();
  d[0] = 0;
  std::fill(d + 1, d + w, kInf);
  for (size_t i = 0; i < n; ++i) {
    const int32_t* up = d + i * w;
    int32_t* row = d + (i + 1) * w;
    const int32_t* cost_row = cost_.data() + static_cast<size_t>(source_unique_[i]) * ut;
    const int32_t* tu = target_unique_.data();
    int32_t left = kInf;
    row[0] = kInf;
    for (size_t j = 0; j < m; ++j) {
      const int32_t best = std::min(std::min(up[j], up[j + 1]), left);
      left = cost_row[tu[j]] + best;
      row[j + 1] = left;
    }
  }
  out.cost = d[n * w + m];

  // 3. Traceback on M = D[1:, 1:] from (n−1, m−1): argmin over (diag, up, left), first minimum wins.
  auto at = [&](size_t i, size_t j) { return d[(i + 1) * w + (j + 1)]; };
  auto visit = [&](size_t i, size_t j) {
    Span& a = out.target_to_source[j];
    if (a.size() == 0)
      a = {static_cast<int32_t>(i), static_cast<int32_t>(i) + 1};
    else
      a.begin = std::min<int32_t>(a.begin, i), a.end = std::max<int32_t>(a.end, i + 1);
    Span& b = out.source_to_target[i];
    if (b.size() == 0)
      b = {static_cast<int32_t>(j), static_cast<int32_t>(j) + 1};
    else
      b.begin = std::min<int32_t>(b.begin, j), b.end = std::max<int32_t>(b.end, j + 1);
  };
  size_t i = n - 1, j = m - 1;
  while (i > 0 || j > 0) {
    visit(i, j);
    const int32_t diag = (i > 0 && j > 0) ? at(i - 1, j - 1) : kInf;
    const int32_t up = i > 0 ? at(i - 1, j) : kInf;
    const int32_t left = j > 0 ? at(i, j - 1) : kInf;
    if (diag <= up && diag <= left && i > 0 && j > 0)
      --i, --j;
    else if (up <= left && i > 0)
      --i;
    else
      --j;
  }
  visit(0, 0);
  return out;
}

TokenAlignment align_dtw(const std::vector<std::string>& source_tokens, std::string_view source_marker,
                         const std::vector<std::string>& target_tokens, std::string_view target_marker) {
  DtwAligner aligner;
  return aligner.align(source_tokens, source_marker, target_tokens, target_marker);
}

}  // namespace fusellm::align
