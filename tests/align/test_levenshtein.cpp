// Levenshtein kernels against the plain DP on random strings over small alphabets (many ties and repeats),
// including non-ASCII code points and lengths around the 16/64 limits.
#include <gtest/gtest.h>

#include <random>

#include "fusellm/align/levenshtein.hpp"

namespace fusellm::align {
namespace {

CodePoints random_cps(std::mt19937& rng, size_t max_len) {
  static const uint32_t alphabet[] = {'a', 'b', 'c', ' ', 0x2581, 0xE9, 0x4E2D, 0x1F600};
  std::uniform_int_distribution<size_t> len(0, max_len), pick(0, 7);
  CodePoints out(len(rng));
  for (auto& c : out) c = alphabet[pick(rng)];
  return out;
}

TEST(Levenshtein, Utf8DecodingAndKnownValues) {
  EXPECT_EQ(to_code_points("a\xC3\xA9\xE2\x96\x81\xF0\x9F\x98\x80"), (CodePoints{'a', 0xE9, 0x2581, 0x1F600}));
  EXPECT_EQ(to_code_points("\xFF"), (CodePoints{0xFFFD}));
  EXPECT_EQ(levenshtein(to_code_points("kitten"), to_code_points("sitting")), 3);
  EXPECT_EQ(levenshtein(to_code_points(""), to_code_points("abc")), 3);
  EXPECT_EQ(levenshtein(to_code_points("\xE2\x96\x81the"), to_code_points("the")), 1);  // one code point, not 3 bytes
  std::string s;
  append_utf8(s, 0x1F600);
  EXPECT_EQ(s, "\xF0\x9F\x98\x80");
}

TEST(Levenshtein, MyersMatchesDp) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 3000; ++trial) {
    const CodePoints a = random_cps(rng, trial % 3 == 0 ? 70 : 20), b = random_cps(rng, trial % 5 == 0 ? 80 : 20);
    const int expected = levenshtein_dp(a, b);
    ASSERT_EQ(levenshtein(a, b), expected);
    if (a.size() <= 64) {
      MyersPattern p(a);
      ASSERT_EQ(p.distance(b.data(), b.size()), expected);
      for (int bound : {0, 1, 3, 10}) {
        const int d = p.distance_bounded(b.data(), b.size(), bound);
        if (expected <= bound)
          ASSERT_EQ(d, expected);
        else
          ASSERT_GT(d, bound);
      }
    }
  }
}

TEST(Levenshtein, BatchMatchesDp) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    DenseAlphabet alphabet;
    std::vector<CodePoints> patterns;
    std::vector<std::vector<uint32_t>> dense;
    const size_t lanes = 1 + trial % kBatchLanes;
    while (patterns.size() < lanes) {
      CodePoints p = random_cps(rng, kBatchMaxPattern);
      if (p.empty()) continue;
      for (uint32_t cp : p) alphabet.add(cp);
      patterns.push_back(std::move(p));
    }
    for (const auto& p : patterns) dense.push_back(alphabet.encode(p));
    std::vector<const std::vector<uint32_t>*> ptrs;
    for (const auto& d : dense) ptrs.push_back(&d);
    PatternBatch batch(alphabet.size());
    batch.set(ptrs);
    for (int t = 0; t < 20; ++t) {
      const CodePoints text = random_cps(rng, 30);
      const auto text_dense = alphabet.encode(text);
      uint16_t out[kBatchLanes];
      batch.distances(text_dense.data(), text_dense.size(), out);
      for (size_t lane = 0; lane < lanes; ++lane) ASSERT_EQ(out[lane], levenshtein_dp(patterns[lane], text));
    }
  }
}

}  // namespace
}  // namespace fusellm::align
