// Alignment by byte spans: the grouping rule on hand-made spans (one-to-many, many-to-one, crossings,
// empty spans, shared spans of split characters, space conventions).
#include <gtest/gtest.h>

#include <algorithm>

#include "fusellm/align/alignment.hpp"
#include "fusellm/align/canonical.hpp"
#include "fusellm/align/levenshtein.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "golden.hpp"

namespace fusellm::align {
namespace {

using Lists = std::vector<std::vector<int32_t>>;

TEST(Offsets, IdenticalSpansAreOneToOne) {
  auto a = align_by_offsets({{0, 3}, {3, 7}}, {{0, 3}, {3, 7}});
  EXPECT_EQ(to_lists(a.target_to_source), (Lists{{0}, {1}}));
  EXPECT_EQ(to_lists(a.source_to_target), (Lists{{0}, {1}}));
}

TEST(Offsets, OneToManyAndManyToOne) {
  // text "hello world": source "hello"," world"; target "he","llo"," wor","ld"
  auto a = align_by_offsets({{0, 5}, {5, 11}}, {{0, 2}, {2, 5}, {5, 9}, {9, 11}});
  EXPECT_EQ(to_lists(a.target_to_source), (Lists{{0}, {0}, {1}, {1}}));
  EXPECT_EQ(to_lists(a.source_to_target), (Lists{{0, 1}, {2, 3}}));
  // Crossing boundaries form one group: source [0,3)[3,6), target [0,2)[2,6)... -> "ab|cdef" vs "abc|def"
  auto b = align_by_offsets({{0, 2}, {2, 6}, {6, 8}}, {{0, 3}, {3, 6}, {6, 8}});
  EXPECT_EQ(to_lists(b.target_to_source), (Lists{{0, 1}, {0, 1}, {2}}));
}

TEST(Offsets, EmptySpansAndOverlaps) {
  // EOS appended to both with an empty span at the end: 1:1.
  auto a = align_by_offsets({{0, 4}, {4, 4}}, {{0, 2}, {2, 4}, {4, 4}});
  EXPECT_EQ(to_lists(a.target_to_source), (Lists{{0}, {0}, {1}}));
  // BOS only on the target: joins the first group.
  auto b = align_by_offsets({{0, 4}}, {{0, 0}, {0, 4}});
  EXPECT_EQ(to_lists(b.target_to_source), (Lists{{0}, {0}}));
  // EOS only on the source: joins the last group.
  auto c = align_by_offsets({{0, 4}, {4, 4}}, {{0, 4}});
  EXPECT_EQ(to_lists(c.target_to_source), (Lists{{0, 1}}));
  // Byte-level tokens splitting one 3-byte character share its span: they stay in one group.
  auto d = align_by_offsets({{0, 3}, {0, 3}, {3, 4}}, {{0, 3}, {3, 4}});
  EXPECT_EQ(to_lists(d.target_to_source), (Lists{{0, 1}, {2}}));
  // Leading space inside one side's span only (Llama "▁cat" 3:7, NeoX "Ġcat" 4:7 after trimming): still 1:1.
  auto f = align_by_offsets({{0, 3}, {4, 7}}, {{0, 3}, {3, 7}});
  EXPECT_EQ(to_lists(f.target_to_source), (Lists{{0}, {1}}));
  // Empty inputs.
  EXPECT_TRUE(align_by_offsets({}, {}).target_to_source.empty());
  auto e = align_by_offsets({}, {{0, 1}});
  EXPECT_EQ(e.target_to_source[0].size(), 0);
}

// Real tokenizations of the golden texts (Llama-2 vs NeoX, EOS appended with an empty span), with the bytes
// each token covers (encode_untrimmed): every pair the offsets rule calls 1:1 covers the same bytes and
// stands for the same text (canonical bytes equal), and the two EOS tokens pair up.
TEST(OffsetsGolden, OneToOnePairsCoverTheSameText) {
  FUSELLM_REQUIRE_SHARED();
  const auto dir = test::shared_dir() / "data/tokenizers";
  const auto llama = tok::load_tokenizer(dir / "llama2/tokenizer.model");
  const auto neox = tok::load_tokenizer(dir / "gpt-neox-20b/20B_tokenizer.json");
  size_t positions = 0, one_to_one = 0, texts = 0;
  for (const auto& row : test::golden_sequences()) {
    const std::string text = row.at("text").get<std::string>();
    const tok::Encoding t = llama->encode_untrimmed(text, false), s = neox->encode_untrimmed(text, false);
    std::vector<int32_t> t_ids = t.ids, s_ids = s.ids;
    t_ids.push_back(2);
    s_ids.push_back(0);
    if (t_ids != row.at("base").at("ids").get<std::vector<int32_t>>() ||
        s_ids != row.at("sources").at("neox").at("ids").get<std::vector<int32_t>>())
      continue;  // a tokenizer difference is the tokenizer tests' business
    // NeoX normalizes to NFC (e + U+0301 -> é): a token of é stands for other bytes than the text's. Skip.
    const CodePoints cps = to_code_points(text);
    const bool combining = std::any_of(cps.begin(), cps.end(), [](uint32_t c) { return c >= 0x300 && c <= 0x36F; });
    ++texts;
    std::vector<ByteSpan> ts(t.offsets.begin(), t.offsets.end()), ss(s.offsets.begin(), s.offsets.end());
    ts.emplace_back(text.size(), text.size());
    ss.emplace_back(text.size(), text.size());
    const TokenAlignment a = align_by_offsets(ss, ts);
    ASSERT_EQ(a.target_to_source.back(),
              (Span{static_cast<int32_t>(s_ids.size()) - 1, static_cast<int32_t>(s_ids.size())}));
    for (size_t i = 0; i + 1 < t_ids.size(); ++i) {
      const Span j = a.target_to_source[i];
      ++positions;
      if (j.size() != 1 || a.source_to_target[j.begin].size() != 1) continue;
      ++one_to_one;
      EXPECT_EQ(ts[i], ss[j.begin]) << row.at("id").get<std::string>() << " position " << i;
      if (combining) continue;
      const std::string tt = canonical_text(llama->id_to_token(t_ids[i]), TokenStyle::sentencepiece);
      const std::string st = canonical_text(neox->id_to_token(s_ids[j.begin]), TokenStyle::byte_level);
      // Llama's first token carries the dummy-prefix space that the text does not have.
      const bool dummy = ts[i].first == 0 && !tt.empty() && tt[0] == ' ' && (st.empty() || st[0] != ' ');
      EXPECT_EQ(dummy ? tt.substr(1) : tt, st) << row.at("id").get<std::string>() << " position " << i;
    }
  }
  EXPECT_GT(texts, 50u);
  std::printf("[ offsets  ] %zu texts: %zu of %zu Llama-2 positions 1:1 with a NeoX token (%.1f %%)\n", texts,
              one_to_one, positions, positions ? 100.0 * one_to_one / positions : 0.0);
}

}  // namespace
}  // namespace fusellm::align
