// GPT-NeoX-20B tokenizer.json against Hugging Face's own tokenizers library (the Rust crate, through its
// npm binding; tools/tokenizer-reference/gen_neox.mjs wrote the fixtures): ids, token strings and offsets
// of 1,000+ real texts, the token string of every id, and decoding (lossy on invalid UTF-8).
#include <gtest/gtest.h>

#include "../src/tokenizer/hf_tokenizer.hpp"  // internal factories (not a public header)
#include "hf_test_util.hpp"

namespace fusellm::tok {
namespace {

using test_hf::fixtures_dir;
using test_hf::neox_tokenizer_json;

class HfNeoxReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::shared_dir().empty()) tokenizer_ = load_hf_tokenizer_json(neox_tokenizer_json()).release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  static Tokenizer* tokenizer_;
};
Tokenizer* HfNeoxReference::tokenizer_ = nullptr;

TEST_F(HfNeoxReference, RealTextsGiveTheReferenceIdsTokensAndOffsets) {
  FUSELLM_REQUIRE_SHARED();
  auto rows = test_hf::read_jsonl(fixtures_dir() / "neox_texts.jsonl");
  ASSERT_GE(rows.size(), 1000u);
  size_t with_offsets = 0, mismatches = 0;
  for (const auto& row : rows) {
    std::string text = row["text"].get<std::string>();
    Encoding enc = tokenizer_->encode(text, false);
    auto ids = row["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(enc.ids, ids) << row["source"] << ": '" << text << "'";
    if (enc.ids != ids && ++mismatches > 5) FAIL() << "too many mismatches";
    if (!row.contains("tokens")) continue;
    auto tokens = row["tokens"].get<std::vector<std::string>>();
    ASSERT_EQ(tokens.size(), enc.ids.size());
    for (size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ(tokenizer_->id_to_token(enc.ids[i]), tokens[i]);
    // Offsets: the reference reports code points; ours are bytes, converted the way it converts its own.
    auto offsets = row["offsets"].get<std::vector<std::pair<uint32_t, uint32_t>>>();
    ASSERT_EQ(offsets.size(), enc.offsets.size());
    auto ours = test_hf::to_code_point_offsets(text, enc.offsets);
    for (size_t i = 0; i < offsets.size(); ++i)
      EXPECT_EQ(ours[i], offsets[i]) << "token " << i << " '" << tokens[i] << "' of '" << text << "'";
    ++with_offsets;
  }
  EXPECT_GE(with_offsets, 250u);
}

TEST_F(HfNeoxReference, BatchEncodingOnTwoThreadsMatchesSequential) {
  FUSELLM_REQUIRE_SHARED();
  auto rows = test_hf::read_jsonl(fixtures_dir() / "neox_texts.jsonl");
  std::vector<std::string> texts;
  for (const auto& row : rows) texts.push_back(row["text"].get<std::string>());
  auto batch = tokenizer_->encode_batch(texts, false, 2);
  ASSERT_EQ(batch.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(batch[i].ids, rows[i]["ids"].get<std::vector<int32_t>>());
}

// FNV-1a 64 over every token string followed by "\n", as gen_neox.mjs computes it.
std::string token_strings_hash(const Tokenizer& tokenizer) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (size_t id = 0; id < tokenizer.vocab_size(); ++id) {
    for (unsigned char byte : tokenizer.id_to_token(static_cast<int32_t>(id)) + "\n") {
      hash ^= byte;
      hash *= 0x100000001b3ULL;
    }
  }
  return fmt::format("{:016x}", hash);
}

TEST_F(HfNeoxReference, TokenStringOfEveryIdMatchesConvertIdsToTokens) {
  FUSELLM_REQUIRE_SHARED();
  json ref = parse_json_file(fixtures_dir() / "neox_vocab_decode.json");
  ASSERT_EQ(tokenizer_->vocab_size(), ref["vocab_size"].get<size_t>());
  for (const auto& pair : ref["token_sample"]) {
    auto id = pair[0].get<int32_t>();
    auto token = pair[1].get<std::string>();
    EXPECT_EQ(tokenizer_->id_to_token(id), token) << "id " << id;
    EXPECT_EQ(tokenizer_->token_to_id(token), id) << "token '" << token << "'";
  }
  EXPECT_EQ(token_strings_hash(*tokenizer_), ref["token_fnv1a64"].get<std::string>());
  EXPECT_THROW(tokenizer_->id_to_token(static_cast<int32_t>(tokenizer_->vocab_size())), Error);
  EXPECT_TRUE(tokenizer_->is_special(0));
  EXPECT_FALSE(tokenizer_->is_special(50276));  // "  ": an added token, not special
  EXPECT_EQ(tokenizer_->space_marker(), "\xC4\xA0");
  EXPECT_EQ(tokenizer_->kind(), "bpe");
}

TEST_F(HfNeoxReference, DecodeMatchesTheReferenceIncludingInvalidUtf8AndSkippedSpecials) {
  FUSELLM_REQUIRE_SHARED();
  json ref = parse_json_file(fixtures_dir() / "neox_vocab_decode.json");
  ASSERT_GE(ref["decode"].size(), 200u);
  for (const auto& c : ref["decode"]) {
    auto ids = c[0].get<std::vector<int32_t>>();
    bool skip = c[1].get<bool>();
    EXPECT_EQ(tokenizer_->decode(ids, skip), c[2].get<std::string>()) << c[0].dump() << " skip=" << skip;
  }
}

}  // namespace
}  // namespace fusellm::tok
