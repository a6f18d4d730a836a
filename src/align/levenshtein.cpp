// Levenshtein distance over code points: reference DP, scalar Myers/Hyyrö (≤ 64 code points) and the
// 16-lane batch kernel. Myers/Hyyrö with the "+1 per column" top row computes the global edit distance
// (not the approximate-search variant): after each column the horizontal delta of row 0 is +1.
#include "fusellm/util/target_clones.hpp"
#include "fusellm/align/levenshtein.hpp"

#include <algorithm>
#include <cstring>

#include "fusellm/util/error.hpp"

namespace fusellm::align {

CodePoints to_code_points(std::string_view s) {
  CodePoints out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
    const uint8_t lead = b(i);
    size_t len = 0;
    uint32_t cp = 0;
    if (lead < 0x80)
      len = 1, cp = lead;
    else if (lead >= 0xC2 && lead <= 0xDF)
      len = 2, cp = lead & 0x1F;
    else if (lead >= 0xE0 && lead <= 0xEF)
      len = 3, cp = lead & 0x0F;
    else if (lead >= 0xF0 && lead <= 0xF4)
      len = 4, cp = lead & 0x07;
    bool ok = len > 0 && s.size() - i >= len;
    for (size_t k = 1; ok && k < len; ++k) {
      if ((b(i + k) & 0xC0) != 0x80)
        ok = false;
      else
        cp = (cp << 6) | (b(i + k) & 0x3F);
    }
    if (ok &&
        ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)))
      ok = false;
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

size_t code_point_count(std::string_view s) { return to_code_points(s).size(); }

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int levenshtein_dp(const uint32_t* a, size_t na, const uint32_t* b, size_t nb) {
  std::vector<int> row(nb + 1);
  for (size_t j = 0; j <= nb; ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= na; ++i) {
    int diag = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= nb; ++j) {
      const int up = row[j];
      row[j] = std::min({up + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[nb];
}

int levenshtein(const CodePoints& a, const CodePoints& b) {
  if (a.size() <= 64) return MyersPattern(a).distance(b.data(), b.size());
  if (b.size() <= 64) return MyersPattern(b).distance(a.data(), a.size());
  return levenshtein_dp(a, b);
}

MyersPattern::MyersPattern(const CodePoints& pattern) : length_(pattern.size()) {
  FUSELLM_CHECK(length_ <= 64, "MyersPattern: pattern of {} code points (at most 64)", length_);
  for (size_t k = 0; k < length_; ++k) {
    const uint32_t cp = pattern[k];
    const uint64_t bit = uint64_t{1} << k;
    if (cp < 128) {
      ascii_[cp] |= bit;
      continue;
    }
    auto it = std::find(other_cps_.begin(), other_cps_.end(), cp);
    if (it == other_cps_.end()) {
      other_cps_.push_back(cp);
      other_masks_.push_back(bit);
    } else {
      other_masks_[it - other_cps_.begin()] |= bit;
    }
  }
}

int MyersPattern::distance(const uint32_t* text, size_t n) const { return distance_bounded(text, n, 1 << 30); }

int MyersPattern::distance_bounded(const uint32_t* text, size_t n, int bound) const {
  if (length_ == 0) return static_cast<int>(n);
  const uint64_t high = uint64_t{1} << (length_ - 1);
  uint64_t pv = ~uint64_t{0}, mv = 0;
  int score = static_cast<int>(length_);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t eq = mask(text[i]);
    const uint64_t xv = eq | mv;
    const uint64_t xh = (((eq & pv) + pv) ^ pv) | eq;
    uint64_t ph = mv | ~(xh | pv);
    uint64_t mh = pv & xh;
    if (ph & high)
      ++score;
    else if (mh & high)
      --score;
    // Each remaining column lowers the score by at most one.
    const int lowest = score - static_cast<int>(n - i - 1);
    if (lowest > bound) return lowest;
    ph = (ph << 1) | 1;
    mh <<= 1;
    pv = mh | ~(xv | ph);
    mv = ph & xv;
  }
  return score;
}

uint32_t DenseAlphabet::add(uint32_t cp) {
  if (uint32_t id = find(cp)) return id;
  const uint32_t id = next_++;
  if (cp < 128)
    ascii_[cp] = id;
  else
    other_.emplace(cp, id);
  return id;
}

std::vector<uint32_t> DenseAlphabet::encode(const CodePoints& cps) const {
  std::vector<uint32_t> out(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) out[i] = find(cps[i]);
  return out;
}

void PatternBatch::set(const std::vector<const std::vector<uint32_t>*>& patterns) {
  FUSELLM_CHECK(patterns.size() <= kBatchLanes, "PatternBatch: {} patterns (at most {})", patterns.size(), kBatchLanes);
  for (uint32_t id : touched_) std::memset(&peq_[id * kBatchLanes], 0, kBatchLanes * sizeof(uint16_t));
  touched_.clear();
  std::memset(high_bit_, 0, sizeof high_bit_);
  std::memset(length_, 0, sizeof length_);
  lanes_ = patterns.size();
  for (size_t lane = 0; lane < lanes_; ++lane) {
    const auto& p = *patterns[lane];
    FUSELLM_CHECK(!p.empty() && p.size() <= kBatchMaxPattern, "PatternBatch: pattern of {} code points", p.size());
    for (size_t k = 0; k < p.size(); ++k) {
      FUSELLM_CHECK(p[k] * kBatchLanes < peq_.size(), "PatternBatch: code point id {} outside the alphabet", p[k]);
      peq_[p[k] * kBatchLanes + lane] |= static_cast<uint16_t>(1u << k);
      touched_.push_back(p[k]);
    }
    high_bit_[lane] = static_cast<uint16_t>(1u << (p.size() - 1));
    length_[lane] = static_cast<uint16_t>(p.size());
  }
}

namespace {

typedef uint16_t U16x16 __attribute__((vector_size(32)));

// Sixteen Myers/Hyyrö columns side by side, for `count` texts; built for AVX2 when the CPU has it, plain
// SSE2 otherwise.
FUSELLM_AVX2_CLONES void batch_kernel(const uint16_t* peq, const uint32_t* chars,
                                                                    const uint32_t* offsets, size_t count,
                                                                    const uint16_t* high_bit, const uint16_t* length,
                                                                    uint16_t* out) {
  U16x16 high, init, eq;
  std::memcpy(&high, high_bit, sizeof high);
  std::memcpy(&init, length, sizeof init);
  const U16x16 zero = {};
  const U16x16 one = zero + 1;
  for (size_t t = 0; t < count; ++t) {
    U16x16 pv = ~zero, mv = zero, score = init;
    for (uint32_t i = offsets[t]; i < offsets[t + 1]; ++i) {
      std::memcpy(&eq, peq + static_cast<size_t>(chars[i]) * kBatchLanes, sizeof eq);
      const U16x16 xv = eq | mv;
      const U16x16 xh = (((eq & pv) + pv) ^ pv) | eq;
      U16x16 ph = mv | ~(xh | pv);
      U16x16 mh = pv & xh;
      score -= (U16x16)((ph & high) != zero);  // comparison gives -1 per true lane
      score += (U16x16)((mh & high) != zero);
      ph = (ph << 1) | one;
      mh = mh << 1;
      pv = mh | ~(xv | ph);
      mv = ph & xv;
    }
    std::memcpy(out + t * kBatchLanes, &score, sizeof score);
  }
}

}  // namespace

void PatternBatch::distances(const uint32_t* text, size_t n, uint16_t out[kBatchLanes]) const {
  const uint32_t offsets[2] = {0, static_cast<uint32_t>(n)};
  batch_kernel(peq_.data(), text, offsets, 1, high_bit_, length_, out);
}

void PatternBatch::distances_many(const uint32_t* chars, const uint32_t* offsets, size_t count, uint16_t* out) const {
  batch_kernel(peq_.data(), chars, offsets, count, high_bit_, length_, out);
}

}  // namespace fusellm::align
