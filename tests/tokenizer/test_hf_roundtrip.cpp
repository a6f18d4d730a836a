// Byte-level BPE is lossless: decode(encode(x)) == x for arbitrary UTF-8 (emoji, CJK, combining marks,
// control characters). Invalid UTF-8 is handled as Hugging Face does: its Rust API takes &str, so callers
// (Python, Node) hold only valid text and bytes are repaired before tokenization — fusellm repairs them
// the same way (String::from_utf8_lossy: one U+FFFD per maximal invalid subsequence), with offsets
// pointing at the invalid bytes. Decoding ids whose bytes are not UTF-8 gives U+FFFD (lossy), as HF does.
#include <gtest/gtest.h>

#include <random>

#include "../src/tokenizer/hf_tokenizer.hpp"  // internal factories (not a public header)
#include "../src/tokenizer/hf_unicode.hpp"
#include "hf_test_util.hpp"

namespace fusellm::tok {
namespace {

std::unique_ptr<Tokenizer> gpt2() {
  auto dir = test::shared_dir() / "data/tokenizers/gpt2";
  return load_gpt2_vocab_merges(dir / "gpt2_vocab.json", dir / "gpt2_merges.txt");
}

// Random valid UTF-8 drawn from ranges that exercise every byte length and character class.
std::string random_utf8(std::mt19937& rng, size_t chars) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x00, 0x1F},      {0x20, 0x7E},       {0x20, 0x7E},     {0x7F, 0xFF},     {0x300, 0x36F},   // controls, ASCII, Latin-1, combining
      {0x370, 0x3FF},    {0x400, 0x4FF},     {0x590, 0x6FF},   {0x900, 0x97F},   {0x1100, 0x11FF},  // Greek, Cyrillic, Hebrew/Arabic, Devanagari, jamo
      {0x2000, 0x206F},  {0x3000, 0x30FF},   {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xFB00, 0xFB4F},  // punctuation, kana, CJK, Hangul, ligatures
      {0xFE00, 0xFFFD},  {0x1F300, 0x1FAFF}, {0x10000, 0x10FFFF}};
  std::string out;
  for (size_t i = 0; i < chars; ++i) {
    const auto& [lo, hi] = ranges[rng() % ranges.size()];
    char32_t cp = lo + static_cast<char32_t>(rng() % (hi - lo + 1));
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
    unicode::append_utf8(out, cp);
  }
  return out;
}

TEST(HfRoundTrip, ByteLevelDecodeOfEncodeIsIdentityOnArbitraryUtf8) {
  FUSELLM_REQUIRE_SHARED();
  auto tokenizer = gpt2();
  std::mt19937 rng(7);
  for (int k = 0; k < 300; ++k) {
    std::string text = random_utf8(rng, 1 + rng() % 60);
    Encoding enc = tokenizer->encode(text, false);
    EXPECT_EQ(tokenizer->decode(enc.ids), text);
    // Offsets stay inside the text and never go backwards.
    for (size_t i = 0; i < enc.offsets.size(); ++i) {
      EXPECT_LE(enc.offsets[i].first, enc.offsets[i].second);
      EXPECT_LE(enc.offsets[i].second, text.size());
      if (i) EXPECT_LE(enc.offsets[i - 1].first, enc.offsets[i].first);
    }
  }
  for (std::string text : std::vector<std::string>{"🦙🦙 👨‍👩‍👧‍👦 🇫🇷", "中文 日本語 한국어", "e\xCC\x81\xCC\xA7 a\xCD\x85", std::string("\0\x01\x1f\x7f\n\r\t", 7)})
    EXPECT_EQ(tokenizer->decode(tokenizer->encode_ids(text, false)), text);
}

TEST(HfRoundTrip, NfcTokenizerRoundTripsNfcTextAndNormalizesTheRest) {
  FUSELLM_REQUIRE_SHARED();
  auto neox = load_hf_tokenizer_json(test_hf::neox_tokenizer_json());
  std::mt19937 rng(11);
  for (int k = 0; k < 200; ++k) {
    std::string text = random_utf8(rng, 1 + rng() % 40);
    std::string once = neox->decode(neox->encode_ids(text, false));
    // Decoding gives the NFC form of the text; that is a fixed point.
    EXPECT_EQ(neox->decode(neox->encode_ids(once, false)), once);
    EXPECT_EQ(once.size() <= text.size() * 3, true);
  }
  EXPECT_EQ(neox->decode(neox->encode_ids("cafe\xCC\x81", false)), "caf\xC3\xA9");  // e + U+0301 -> é
}

TEST(HfRoundTrip, InvalidUtf8InputIsRepairedLikeFromUtf8Lossy) {
  FUSELLM_REQUIRE_SHARED();
  auto tokenizer = gpt2();
  // "a", lone continuation byte, "b", truncated 3-byte sequence, "c", overlong, "d".
  std::string bad = "a\x80" "b\xE2\x82" "c\xC0\xAF" "d";
  std::string repaired = "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD" "d";
  EXPECT_EQ(unicode::utf8_lossy(bad), repaired);
  EXPECT_EQ(tokenizer->encode_ids(bad, false), tokenizer->encode_ids(repaired, false));
  Encoding enc = tokenizer->encode(bad, false);
  for (auto [b, e] : enc.offsets) EXPECT_LE(e, bad.size());
  EXPECT_EQ(tokenizer->decode(enc.ids), repaired);
}

TEST(HfRoundTrip, DecodingBytesThatAreNotUtf8GivesReplacementCharacters) {
  FUSELLM_REQUIRE_SHARED();
  auto tokenizer = gpt2();
  // "â" is byte 0xE2 alone in the byte-level alphabet; "ðŁ" is 0xF0 0x9F: both start unfinished sequences.
  auto lone = tokenizer->token_to_id("\xC3\xA2");
  auto partial = tokenizer->token_to_id("\xC3\xB0\xC5\x81");
  ASSERT_TRUE(lone && partial);
  EXPECT_EQ(tokenizer->decode({*lone}), "\xEF\xBF\xBD");
  EXPECT_EQ(tokenizer->decode({*tokenizer->token_to_id("a"), *partial, *tokenizer->token_to_id("b")}), "a\xEF\xBF\xBD" "b");
}

}  // namespace
}  // namespace fusellm::tok
