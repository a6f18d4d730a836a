#pragma once
// Unit-cost Levenshtein distance over Unicode code points (what the official FuseLLM code computes with
// editdistance / python-Levenshtein on Python str), in three forms: a plain DP (any length, the reference),
// Myers/Hyyrö bit-parallel for one pattern of at most 64 code points, and a batch kernel that compares up to
// 16 patterns of at most 16 code points against one text at once (16-bit lanes, SIMD).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fusellm::align {

using CodePoints = std::vector<uint32_t>;

// Decodes UTF-8 into code points; an invalid byte becomes U+FFFD (token strings are valid UTF-8 in practice).
CodePoints to_code_points(std::string_view utf8);
// Number of code points (same rule as to_code_points).
size_t code_point_count(std::string_view utf8);
// Appends the UTF-8 encoding of `cp` to `out`.
void append_utf8(std::string& out, uint32_t cp);

// Reference O(|a|·|b|) dynamic programme.
int levenshtein_dp(const uint32_t* a, size_t na, const uint32_t* b, size_t nb);
inline int levenshtein_dp(const CodePoints& a, const CodePoints& b) {
  return levenshtein_dp(a.data(), a.size(), b.data(), b.size());
}
// Dispatches to Myers when one side fits 64 code points, else the DP.
int levenshtein(const CodePoints& a, const CodePoints& b);

// One pattern (≤ 64 code points) prepared for Myers/Hyyrö: a bit mask per distinct code point.
class MyersPattern {
 public:
  explicit MyersPattern(const CodePoints& pattern);
  size_t size() const { return length_; }
  uint64_t mask(uint32_t cp) const {
    if (cp < 128) return ascii_[cp];
    for (size_t i = 0; i < other_cps_.size(); ++i)
      if (other_cps_[i] == cp) return other_masks_[i];
    return 0;
  }
  int distance(const uint32_t* text, size_t n) const;
  // Distance if it is ≤ bound, else some value > bound (stops as soon as the bound cannot be met).
  int distance_bounded(const uint32_t* text, size_t n, int bound) const;

 private:
  size_t length_ = 0;
  uint64_t ascii_[128] = {};
  std::vector<uint32_t> other_cps_;
  std::vector<uint64_t> other_masks_;
};

// Maps code points to a small dense alphabet (0 = "in no pattern"), so batch kernels use flat tables.
class DenseAlphabet {
 public:
  uint32_t add(uint32_t cp);          // id for cp, creating it
  uint32_t find(uint32_t cp) const {  // 0 when cp was never added
    if (cp < 128) return ascii_[cp];
    auto it = other_.find(cp);
    return it == other_.end() ? 0 : it->second;
  }
  size_t size() const { return next_; }                       // ids are 1..size()-1
  std::vector<uint32_t> encode(const CodePoints& cps) const;  // unknown → 0

 private:
  uint32_t ascii_[128] = {};
  std::unordered_map<uint32_t, uint32_t> other_;
  uint32_t next_ = 1;
};

inline constexpr size_t kBatchLanes = 16;
inline constexpr size_t kBatchMaxPattern = 16;

// Up to 16 patterns of 1..16 code points (dense ids), compared against one text at a time.
class PatternBatch {
 public:
  explicit PatternBatch(size_t alphabet_size) : peq_(alphabet_size * kBatchLanes, 0) {}
  // Replaces the patterns (each 1..kBatchMaxPattern dense ids; at most kBatchLanes of them).
  void set(const std::vector<const std::vector<uint32_t>*>& patterns);
  size_t lanes() const { return lanes_; }
  // out[lane] = distance of pattern `lane` to the text (dense ids) for every lane (unused lanes: garbage).
  void distances(const uint32_t* text, size_t n, uint16_t out[kBatchLanes]) const;
  // Many texts at once: text t is chars[offsets[t] .. offsets[t+1]); out[t * kBatchLanes + lane].
  void distances_many(const uint32_t* chars, const uint32_t* offsets, size_t count, uint16_t* out) const;
  // The mask table, [dense id * kBatchLanes + lane] (for kernels that scan many texts).
  const uint16_t* table() const { return peq_.data(); }

 private:
  std::vector<uint16_t> peq_;      // [dense id][lane]
  std::vector<uint32_t> touched_;  // dense ids set by the current patterns, cleared on the next set()
  uint16_t high_bit_[kBatchLanes] = {};
  uint16_t length_[kBatchLanes] = {};
  size_t lanes_ = 0;
};

}  // namespace fusellm::align
