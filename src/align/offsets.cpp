// Alignment by byte spans (rule in alignment.hpp). A "cut" k of one side (between tokens k−1 and k) is the
// byte interval [max end of tokens < k, min begin of tokens ≥ k]; it is a valid boundary when that interval is
// not empty (no token crosses it). align_run passes untrimmed spans (every byte covered by its token), where
// a valid cut is a point; the interval form also makes trimmed spans (Llama "▁cat" covers " cat", NeoX
// "Ġcat" only "cat") meet. Both sides' valid cuts are merged in one pass; intersecting cuts close a group.
#include <algorithm>
#include <limits>

#include "fusellm/align/alignment.hpp"

namespace fusellm::align {

namespace {

struct Cut {
  int32_t index;  // tokens [0, index) lie before it
  uint32_t lo, hi;
};

std::vector<Cut> valid_cuts(const std::vector<ByteSpan>& spans) {
  const size_t n = spans.size();
  std::vector<uint32_t> suffix_min_begin(n + 1, std::numeric_limits<uint32_t>::max());
  for (size_t k = n; k-- > 0;) suffix_min_begin[k] = std::min(suffix_min_begin[k + 1], spans[k].first);
  std::vector<Cut> cuts;
  uint32_t prefix_max_end = 0;
  for (size_t k = 1; k <= n; ++k) {  // cut 0 (the start) is implicit
    prefix_max_end = std::max(prefix_max_end, std::max(spans[k - 1].first, spans[k - 1].second));
    if (k == n || prefix_max_end <= suffix_min_begin[k])
      cuts.push_back({static_cast<int32_t>(k), prefix_max_end, suffix_min_begin[k]});
  }
  return cuts;
}

}  // namespace

TokenAlignment align_by_offsets(const std::vector<ByteSpan>& source, const std::vector<ByteSpan>& target) {
  TokenAlignment out;
  const int32_t n = static_cast<int32_t>(source.size()), m = static_cast<int32_t>(target.size());
  out.source_to_target.assign(n, Span{});
  out.target_to_source.assign(m, Span{});
  if (n == 0 || m == 0) return out;
  const std::vector<Cut> cs = valid_cuts(source), ct = valid_cuts(target);
  size_t a = 0, b = 0;
  int32_t last_s = 0, last_t = 0;
  auto close = [&](int32_t ks, int32_t kt) {
    for (int32_t t = last_t; t < kt; ++t) out.target_to_source[t] = {last_s, ks};
    for (int32_t s = last_s; s < ks; ++s) out.source_to_target[s] = {last_t, kt};
    last_s = ks;
    last_t = kt;
  };
  for (;;) {
    const Cut& x = cs[a];
    const Cut& y = ct[b];
    const bool x_final = x.index == n, y_final = y.index == m;
    if (x_final && y_final) {
      close(n, m);
      break;
    }
    // The ends of the sequences only meet each other.
    if (x_final) {
      ++b;
    } else if (y_final) {
      ++a;
    } else if (x.lo <= y.hi && y.lo <= x.hi) {
      close(x.index, y.index);
      ++a, ++b;
    } else if (x.hi < y.lo) {
      ++a;
    } else {
      ++b;
    }
  }
  return out;
}

}  // namespace fusellm::align
