// DTW against the official others.dtw outputs (../shared/golden/align) and hand-checked small cases.
#include <gtest/gtest.h>

#include "fusellm/align/alignment.hpp"
#include "golden.hpp"

namespace fusellm::align {
namespace {

const std::string kLlama = "\xE2\x96\x81";  // ▁
const std::string kNeox = "\xC4\xA0";       // Ġ

TEST(Dtw, OneToOneAndSplits) {
  // Same tokens: the diagonal.
  auto a = align_dtw({"a", "b", "c"}, kNeox, {"a", "b", "c"}, kLlama);
  EXPECT_EQ(a.cost, 0);
  EXPECT_EQ(to_lists(a.target_to_source), (std::vector<std::vector<int32_t>>{{0}, {1}, {2}}));
  // One source token, several target tokens (many target -> one source) and the reverse.
  auto b = align_dtw({"\xC4\xA0hello", "x"}, kNeox, {"\xE2\x96\x81he", "llo", "x"}, kLlama);
  EXPECT_EQ(to_lists(b.target_to_source), (std::vector<std::vector<int32_t>>{{0}, {0}, {1}}));
  EXPECT_EQ(to_lists(b.source_to_target), (std::vector<std::vector<int32_t>>{{0, 1}, {2}}));
  EXPECT_EQ(b.cost, 3 + 2 + 0);  // ed(hello, he) + ed(hello, llo) + 0
  auto c = align_dtw({"he", "llo"}, kNeox, {"hello"}, kLlama);
  EXPECT_EQ(to_lists(c.target_to_source), (std::vector<std::vector<int32_t>>{{0, 1}}));
}

TEST(Dtw, TiesPreferDiagonalThenUpThenLeft) {
  // Every cell costs 1: at (1,1) diag, up and left tie -> diagonal.
  auto a = align_dtw({"a", "b"}, kNeox, {"x", "y"}, kLlama);
  EXPECT_EQ(to_lists(a.target_to_source), (std::vector<std::vector<int32_t>>{{0}, {1}}));
  // 3 source x 2 target, all costs 1: from (2,1) diag = D(1,0) = 2, up = D(1,1) = 2 -> diagonal; then (1,0) -> up.
  auto b = align_dtw({"a", "b", "c"}, kNeox, {"x", "y"}, kLlama);
  EXPECT_EQ(to_lists(b.target_to_source), (std::vector<std::vector<int32_t>>{{0, 1}, {2}}));
  // 2 source x 3 target: left is taken only after diag and up.
  auto c = align_dtw({"a", "b"}, kNeox, {"x", "y", "z"}, kLlama);
  EXPECT_EQ(to_lists(c.target_to_source), (std::vector<std::vector<int32_t>>{{0}, {0}, {1}}));
}

TEST(Dtw, MarkersAreDeletedAndEmptyInputs) {
  // "Ġ" alone and "▁" alone both become "" (distance 0 to each other).
  auto a = align_dtw({"\xC4\xA0", "\xC3\xA9t\xC3\xA9"}, kNeox, {"\xE2\x96\x81", "\xC3\xA9t\xC3\xA9"}, kLlama);
  EXPECT_EQ(a.cost, 0);
  auto e = align_dtw({}, kNeox, {"a"}, kLlama);
  EXPECT_EQ(e.cost, 0);
  ASSERT_EQ(e.target_to_source.size(), 1u);
  EXPECT_EQ(e.target_to_source[0].size(), 0);
  EXPECT_TRUE(align_dtw({"a"}, kNeox, {}, kLlama).source_to_target[0].size() == 0);
}

TEST(DtwGolden, AllTextsBothSources) {
  FUSELLM_REQUIRE_SHARED();
  const auto& rows = test::golden_sequences();
  ASSERT_EQ(rows.size(), 62u);
  DtwAligner aligner;
  size_t checked = 0;
  for (const auto& row : rows) {
    const auto base = row.at("base").at("tokens").get<std::vector<std::string>>();
    for (const char* name : {"neox", "tok512"}) {
      const auto& src = row.at("sources").at(name);
      const auto tokens = src.at("tokens").get<std::vector<std::string>>();
      const auto& dtw = src.at("dtw");
      const TokenAlignment a = aligner.align(tokens, name == std::string("neox") ? kNeox : kLlama, base, kLlama);
      const std::string what = row.at("id").get<std::string>() + "/" + name;
      EXPECT_EQ(a.cost, dtw.at("cost").get<int64_t>()) << what;
      EXPECT_EQ(to_lists(a.target_to_source), dtw.at("base_to_blending").get<std::vector<std::vector<int32_t>>>())
          << what;
      EXPECT_EQ(to_lists(a.source_to_target), dtw.at("blending_to_base").get<std::vector<std::vector<int32_t>>>())
          << what;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 124u);
}

}  // namespace
}  // namespace fusellm::align
