// The chunker: every chunk fits every tokenizer's budget when re-tokenized on its own, chunks concatenate
// back to their document, cuts are at boundaries of every tokenizer, degenerate text falls back to
// character boundaries, and windowed tokenization of long documents cuts as whole-document tokenization does.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "fusellm/data/chunker.hpp"
#include "test_chunk_util.hpp"

namespace fusellm::data {
namespace {

using ::testing::HasSubstr;
using test::real_tokenizers;

bool is_continuation_byte(char c) { return (static_cast<uint8_t>(c) & 0xC0) == 0x80; }

tok::Encoding encoding_with(std::vector<std::pair<uint32_t, uint32_t>> offsets) {
  tok::Encoding e;
  e.offsets = std::move(offsets);
  e.ids.assign(e.offsets.size(), 0);
  return e;
}

TEST(TokenBoundaries, AdjacentGapsOverlapsEmptySpansAndUtf8) {
  // "Hello  world" as byte-level BPE reports it: "Hello", "  " trimmed to nothing, "world" without its space.
  EXPECT_EQ(token_boundaries(encoding_with({{0, 5}, {7, 7}, {7, 12}}), "Hello  world"),
            (std::vector<size_t>{0, 5, 12}));
  // SentencePiece style: spans include the space.
  EXPECT_EQ(token_boundaries(encoding_with({{0, 5}, {5, 6}, {6, 12}}), "Hello  world"),
            (std::vector<size_t>{0, 5, 6, 12}));
  // Two tokens sharing one 3-byte character (partial-character BPE tokens): no boundary inside.
  EXPECT_EQ(token_boundaries(encoding_with({{0, 1}, {1, 4}, {1, 4}, {4, 5}}), "a\xE8\xAA\x9E" "b"),
            (std::vector<size_t>{0, 1, 4, 5}));
  // Byte pieces: empty spans before the last one; a span (wrongly) starting inside a character is ignored.
  EXPECT_EQ(token_boundaries(encoding_with({{0, 0}, {0, 0}, {0, 3}, {3, 4}}), "\xE6\x97\xA5x"),
            (std::vector<size_t>{0, 3, 4}));
  EXPECT_EQ(token_boundaries(encoding_with({{0, 2}, {2, 3}}), "\xE6\x97\xA5"), (std::vector<size_t>{0, 3}));
  EXPECT_EQ(token_boundaries(encoding_with({}), ""), (std::vector<size_t>{0}));
}

TEST(ChunkTokenBudget, SubtractsMarginAndSpecials) {
  EXPECT_EQ(chunk_token_budget(64, 0, true, true), 62);
  EXPECT_EQ(chunk_token_budget(64, 4, false, true), 59);
  EXPECT_EQ(chunk_token_budget(64, 4, false, false), 60);
}

std::vector<ChunkTokenizer> real_chunk_tokenizers(int64_t max_length, int64_t margin) {
  std::vector<ChunkTokenizer> out;
  for (const auto& t : real_tokenizers())
    out.push_back({t.name, t.tokenizer,
                   chunk_token_budget(max_length, margin, t.tokenizer->special_tokens().add_bos, true)});
  return out;
}

// Checks the chunks of `doc` with the tokenizers themselves (not the chunker's own counts).
void expect_valid_chunks(const std::string& doc, const std::vector<ChunkSpan>& chunks,
                         const std::vector<ChunkTokenizer>& tokenizers, int64_t max_length, int64_t margin) {
  std::string joined;
  size_t expected_begin = 0;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const ChunkSpan& span = chunks[c];
    ASSERT_EQ(span.begin, expected_begin);
    ASSERT_LT(span.begin, span.end);
    expected_begin = span.end;
    const std::string text = doc.substr(span.begin, span.end - span.begin);
    joined += text;
    ASSERT_FALSE(is_continuation_byte(text.front())) << "chunk " << c << " starts inside a UTF-8 character";
    ASSERT_EQ(span.tokens.size(), tokenizers.size());
    for (size_t t = 0; t < tokenizers.size(); ++t) {
      const auto& tk = *tokenizers[t].tokenizer;
      const int64_t specials = (tk.special_tokens().add_bos ? 1 : 0) + 1;  // BOS as configured, EOS always
      const auto n = static_cast<int64_t>(tk.encode(text, false).ids.size());
      EXPECT_LE(n + specials, max_length - margin) << tokenizers[t].name << ", chunk " << c << ": " << text;
      EXPECT_EQ(n, span.tokens[t]) << tokenizers[t].name << ", chunk " << c;
    }
  }
  EXPECT_EQ(joined, doc);
}

// The boundaries of each tokenizer over the whole document, to check where cuts fall.
std::vector<std::set<size_t>> whole_document_boundaries(const std::string& doc, const std::vector<ChunkTokenizer>& tokenizers) {
  std::vector<std::set<size_t>> out;
  for (const auto& t : tokenizers) {
    auto b = token_boundaries(t.tokenizer->encode(doc, false), doc);
    out.emplace_back(b.begin(), b.end());
  }
  return out;
}

class RealTokenizerChunking : public ::testing::TestWithParam<std::pair<int64_t, int64_t>> {};

TEST_P(RealTokenizerChunking, EveryChunkFitsEveryTokenizerAndConcatenatesBack) {
  FUSELLM_REQUIRE_SHARED();
  const auto [max_length, margin] = GetParam();
  const auto tokenizers = real_chunk_tokenizers(max_length, margin);
  const Chunker chunker(tokenizers);
  ChunkerStats stats;
  uint64_t cuts = 0, cuts_at_whole_document_boundaries = 0;
  double fill_sum = 0;
  uint64_t fill_count = 0;
  const auto docs = test::sample_documents();
  for (const auto& doc : docs) {
    const auto chunks = chunker.split(doc, stats, "doc");
    ASSERT_FALSE(chunks.empty());
    expect_valid_chunks(doc, chunks, tokenizers, max_length, margin);
    if (chunks.size() < 2) continue;
    const auto bounds = whole_document_boundaries(doc, tokenizers);
    for (size_t c = 0; c + 1 < chunks.size(); ++c) {
      ++cuts;
      bool everywhere = true;
      for (const auto& b : bounds) everywhere = everywhere && b.count(chunks[c].end);
      cuts_at_whole_document_boundaries += everywhere;
      double fill = 0;  // how full the fullest tokenizer is: the chunker takes the largest cut that fits
      for (size_t t = 0; t < tokenizers.size(); ++t)
        fill = std::max(fill, double(chunks[c].tokens[t]) / double(tokenizers[t].budget));
      fill_sum += fill, ++fill_count;
    }
  }
  EXPECT_EQ(stats.documents, docs.size());
  EXPECT_EQ(stats.chunks, stats.documents + cuts);
  EXPECT_GT(cuts, 200u);  // small max_length: many cuts happen
  // Cuts come from common boundaries (rarely a character-boundary fallback) and agree with each
  // tokenizer's segmentation of the whole document almost always.
  EXPECT_LT(stats.forced_cuts, cuts / 50 + 1);
  EXPECT_GT(double(cuts_at_whole_document_boundaries), 0.95 * double(cuts));
  EXPECT_GT(fill_sum / double(fill_count), 0.85);
  for (size_t t = 0; t < tokenizers.size(); ++t) EXPECT_LE(stats.max_tokens[t], tokenizers[t].budget);
}

INSTANTIATE_TEST_SUITE_P(MaxLengths, RealTokenizerChunking,
                         ::testing::Values(std::make_pair(int64_t{64}, int64_t{0}), std::make_pair(int64_t{128}, int64_t{5})));

TEST(Chunker, WindowedTokenizationCutsLikeWholeDocument) {
  FUSELLM_REQUIRE_SHARED();
  const auto tokenizers = real_chunk_tokenizers(96, 0);
  const auto docs = test::sample_documents();
  const std::string& long_doc = docs[docs.size() - 4];  // joined with "\n" (about 6 KB)
  ASSERT_GT(long_doc.size(), 5000u);
  ChunkerOptions small_windows;
  small_windows.window_bytes = 1500;
  ChunkerStats whole_stats, window_stats;
  const auto whole = Chunker(tokenizers).split(long_doc, whole_stats);
  const auto windowed = Chunker(tokenizers, small_windows).split(long_doc, window_stats);
  expect_valid_chunks(long_doc, windowed, tokenizers, 96, 0);
  ASSERT_EQ(whole.size(), windowed.size());
  for (size_t c = 0; c < whole.size(); ++c) EXPECT_EQ(whole[c].end, windowed[c].end) << "chunk " << c;
}

TEST(Chunker, NoCommonBoundaryFallsBackToCharacterBoundaries) {
  const test::PairTokenizer even(false), odd(true);
  const std::vector<ChunkTokenizer> tokenizers = {{"even", &even, 10}, {"odd", &odd, 10}};
  std::string doc;
  for (int i = 0; i < 40; ++i) doc += i % 3 ? "\xC3\xA9x" : "\xE6\x97\xA5";  // é x and 日: 2-, 1- and 3-byte characters
  ChunkerStats stats;
  const auto chunks = Chunker(tokenizers).split(doc, stats, "pairs");
  ASSERT_GT(chunks.size(), 4u);
  std::string joined;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const std::string text = doc.substr(chunks[c].begin, chunks[c].end - chunks[c].begin);
    joined += text;
    EXPECT_FALSE(is_continuation_byte(text.front())) << "chunk " << c;
    // Pairs of bytes: at most 20 bytes (even) and 19 (odd: 1 + 2·9) fit 10 tokens.
    EXPECT_LE(text.size(), 19u);
    if (c + 1 < chunks.size()) EXPECT_GE(text.size(), 16u) << "largest character boundary that fits";
    EXPECT_TRUE(chunks[c].forced || c + 1 == chunks.size());
  }
  EXPECT_EQ(joined, doc);
  EXPECT_EQ(stats.forced_cuts, chunks.size() - 1);
}

TEST(Chunker, SkipsBlankDocumentsAndRejectsTinyBudgets) {
  const test::PairTokenizer even(false);
  const Chunker chunker({{"even", &even, 10}});
  ChunkerStats stats;
  EXPECT_TRUE(chunker.split(" \n\t\r\n  ", stats).empty());
  EXPECT_TRUE(chunker.split("", stats).empty());
  EXPECT_EQ(stats.skipped_documents, 2u);
  EXPECT_EQ(stats.documents, 0u);
  const auto one = chunker.split(" x ", stats);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].end, 3u);

  try {
    Chunker({{"tiny-model", &even, 3}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("tiny-model"));
    EXPECT_THAT(e.what(), HasSubstr("max_length"));
  }
}

}  // namespace
}  // namespace fusellm::data
