// load_tokenizer on SentencePiece models: directory resolution, Hugging Face config files, content hash,
// bad input; and SentencePieceTokenizer's decode, round trips and batch encoding.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/error_of.hpp"
#include "fusellm/tokenizer/sentencepiece.hpp"
#include "spm_test_util.hpp"

using namespace fusellm;
using testing::HasSubstr;

namespace {

using test::error_of;

// A tokenizer directory in scratch space whose tokenizer.model links to Llama-2's.
fs::path llama_dir(const std::string& name) {
  auto dir = test::scratch_dir(name);
  fs::create_symlink(test::llama2_model(), dir / "tokenizer.model");
  return dir;
}

}  // namespace

TEST(SentencePieceModel, ParsesLlama2Specs) {
  FUSELLM_REQUIRE_SHARED();
  auto model = tok::load_spm_model(test::llama2_model());
  EXPECT_EQ(model.pieces.size(), 32000u);
  EXPECT_EQ(model.trainer.model_type, tok::SpmModelType::Bpe);
  EXPECT_TRUE(model.trainer.byte_fallback);
  EXPECT_EQ(model.trainer.unk_id, 0);
  EXPECT_EQ(model.trainer.bos_id, 1);
  EXPECT_EQ(model.trainer.eos_id, 2);
  EXPECT_EQ(model.trainer.pad_id, -1);
  EXPECT_EQ(model.normalizer.name, "identity");
  EXPECT_TRUE(model.normalizer.precompiled_charsmap.empty());
  EXPECT_TRUE(model.normalizer.add_dummy_prefix);
  EXPECT_FALSE(model.normalizer.remove_extra_whitespaces);
  EXPECT_EQ(model.pieces[29871].piece, "\xE2\x96\x81");
  EXPECT_EQ(model.pieces[13].type, tok::SpmPieceType::Byte);

  auto tok512 = tok::load_spm_model(test::tok512_model());
  EXPECT_EQ(tok512.pieces.size(), 512u);
  EXPECT_TRUE(tok512.normalizer.remove_extra_whitespaces);  // proto default: the field is absent
}

TEST(SentencePieceModel, MalformedFilesNameTheFile) {
  auto dir = test::scratch_dir("spm_malformed");
  auto expect_error = [&](const std::string& name, const std::string& bytes, const std::string& what) {
    write_file_atomic(dir / name, bytes);
    std::string msg = error_of([&] { tok::load_tokenizer(dir / name); });
    EXPECT_THAT(msg, HasSubstr((dir / name).string())) << name;
    EXPECT_THAT(msg, HasSubstr(what)) << name;
  };
  expect_error("text.model", "this is not a protobuf file\n", "not a valid SentencePiece model");
  expect_error("empty.model", "", "no pieces");
  expect_error("truncated.model", std::string("\x0a\x20\x0a\x05<unk>", 9), "runs past the end");
  expect_error("group.model", std::string("\x0b\x0c", 2), "wire type 3");
  // Valid protobuf, but no UNKNOWN piece: ModelProto{pieces{piece:"a" score:0}}.
  expect_error("nounk.model", std::string("\x0a\x03\x0a\x01" "a", 5), "UNKNOWN");
  if (!test::shared_dir().empty()) {
    std::string llama = read_file(test::llama2_model());
    expect_error("cut.model", llama.substr(0, llama.size() / 2), "not a valid SentencePiece model");
  }
}

TEST(SentencePieceModel, UnsupportedFeaturesAreClearErrors) {
  FUSELLM_REQUIRE_SHARED();
  auto model = tok::load_spm_model(test::llama2_model());
  model.normalizer.precompiled_charsmap = "xyz";
  EXPECT_THAT(error_of([&] { tok::SentencePieceTokenizer(model, "m.model"); }),
              HasSubstr("m.model: SentencePiece normalizer 'identity' has a precompiled_charsmap"));
  model = tok::load_spm_model(test::llama2_model());
  model.trainer.model_type = tok::SpmModelType::Word;
  EXPECT_THAT(error_of([&] { tok::SentencePieceTokenizer(model, "m.model"); }),
              HasSubstr("m.model: SentencePiece model type WORD is not supported"));
}

TEST(TokenizerLoader, MissingAndEmptyNameThePath) {
  auto dir = test::scratch_dir("loader_missing");
  EXPECT_THAT(error_of([&] { tok::load_tokenizer(dir / "nope"); }), HasSubstr((dir / "nope").string()));
  EXPECT_THAT(error_of([&] { tok::load_tokenizer(dir); }),
              HasSubstr(dir.string() + ": no tokenizer found"));
  write_file_atomic(dir / "tokenizer_config.json", "{}");  // a config alone is not a tokenizer
  EXPECT_THAT(error_of([&] { tok::load_tokenizer(dir); }), HasSubstr("no tokenizer found"));
  write_file_atomic(dir / "vocab.json", "{}");  // vocab.json needs merges.txt
  EXPECT_THAT(error_of([&] { tok::load_tokenizer(dir / "vocab.json"); }), HasSubstr("merges.txt"));
}

TEST(TokenizerLoader, ConfigFilesSetSpecialTokensAndHash) {
  FUSELLM_REQUIRE_SHARED();
  auto dir = llama_dir("loader_config");
  auto plain = tok::load_tokenizer(dir);
  EXPECT_TRUE(plain->special_tokens().add_bos);
  EXPECT_FALSE(plain->special_tokens().add_eos);
  EXPECT_EQ(plain->special_tokens().bos, 1);
  EXPECT_FALSE(plain->special_tokens().pad.has_value());
  EXPECT_EQ(plain->hash().size(), 16u);
  EXPECT_EQ(plain->hash(), tok::load_tokenizer(test::llama2_model())->hash());  // file name + bytes only
  EXPECT_EQ(plain->source(), dir.string());

  write_file_atomic(dir / "tokenizer_config.json",
                    R"({"add_bos_token": false, "add_eos_token": true, "pad_token": {"content": "<unk>"},
                        "eos_token": "</s>", "bos_token": null, "model_max_length": 4096})");
  auto configured = tok::load_tokenizer(dir);
  EXPECT_FALSE(configured->special_tokens().add_bos);
  EXPECT_TRUE(configured->special_tokens().add_eos);
  EXPECT_EQ(configured->special_tokens().pad, 0);
  EXPECT_FALSE(configured->special_tokens().bos.has_value());
  EXPECT_NE(configured->hash(), plain->hash());
  auto enc = configured->encode("Hello", true);
  EXPECT_EQ(enc.ids, (std::vector<int32_t>{15043, 2}));
  EXPECT_EQ(enc.offsets.back(), (std::pair<uint32_t, uint32_t>(5, 5)));

  // special_tokens_map.json wins over tokenizer_config.json.
  write_file_atomic(dir / "special_tokens_map.json", R"({"pad_token": "</s>", "bos_token": "<s>"})");
  auto mapped = tok::load_tokenizer(dir);
  EXPECT_EQ(mapped->special_tokens().pad, 2);
  EXPECT_EQ(mapped->special_tokens().bos, 1);

  write_file_atomic(dir / "special_tokens_map.json", R"({"pad_token": 7})");
  EXPECT_THAT(error_of([&] { tok::load_tokenizer(dir); }),
              HasSubstr((dir / "special_tokens_map.json").string() + ": key 'pad_token'"));
}

TEST(TokenizerLoader, Stories260KHfDirectory) {
  FUSELLM_REQUIRE_SHARED();
  auto tokenizer = tok::load_tokenizer(test::shared_dir() / "data/models/stories260K-hf");
  EXPECT_EQ(tokenizer->vocab_size(), 512u);
  EXPECT_TRUE(tokenizer->special_tokens().add_bos);
  auto ids = tokenizer->encode_ids("Once upon a time", true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(tokenizer->decode(ids, /*skip_special_tokens=*/true), "Once upon a time");
}

TEST(SentencePieceDecode, RoundTripsRealTextsExactly) {
  FUSELLM_REQUIRE_SHARED();
  auto llama = tok::load_tokenizer(test::llama2_model());
  auto tok512 = tok::load_tokenizer(test::tok512_model());
  size_t checked = 0;
  for (const auto& t : test::llama_fixture().texts) {
    // Special-token text splits the input into segments that each get a dummy prefix, so it does not
    // round-trip (as in Hugging Face); WikiText's "<unk>" lines are skipped here.
    if (t.text.find("<unk>") != std::string::npos) continue;
    // Llama-2: identity normalization, no whitespace collapsing → exact.
    ASSERT_EQ(llama->decode(llama->encode_ids(t.text, false)), t.text) << t.source;
    ASSERT_EQ(llama->decode(llama->encode_ids(t.text, true), /*skip_special_tokens=*/true), t.text) << t.source;
    // tok512 collapses runs of spaces and strips them at the ends; everything else comes back.
    if (t.text.find("  ") == std::string::npos && t.text.front() != ' ' && t.text.back() != ' ')
      ASSERT_EQ(tok512->decode(tok512->encode_ids(t.text, false)), t.text) << t.source;
    ++checked;
  }
  EXPECT_GE(checked, 800u);
}

TEST(SentencePieceDecode, HuggingFaceDecoderRules) {
  FUSELLM_REQUIRE_SHARED();
  auto llama = tok::SentencePieceTokenizer::from_file(test::llama2_model());
  // Leading space of the dummy prefix stripped once; "▁▁" keeps one space.
  EXPECT_EQ(llama->decode({15043, 3186}), "Hello world");
  EXPECT_EQ(llama->decode({29871, 15043}), " Hello");
  // Special tokens appear as their text unless skipped.
  EXPECT_EQ(llama->decode({1, 15043, 2}), "<s> Hello</s>");
  EXPECT_EQ(llama->decode({1, 15043, 2}, true), "Hello");
  // Byte pieces fuse into UTF-8 ("🦙" = F0 9F A6 99); an invalid run gives one U+FFFD per byte.
  EXPECT_EQ(llama->decode({29871, 243, 162, 169, 156}), "\xF0\x9F\xA6\x99");
  EXPECT_EQ(llama->decode({243, 162, 450}), "\xEF\xBF\xBD\xEF\xBF\xBD The");
  EXPECT_THAT(error_of([&] { llama->decode({32000}); }), HasSubstr("token id 32000 is out of range"));
  EXPECT_THAT(error_of([&] { llama->id_to_token(-1); }), HasSubstr("token id -1 is out of range"));
  EXPECT_EQ(llama->id_to_token(29871), "\xE2\x96\x81");
  EXPECT_FALSE(llama->token_to_id("no such piece").has_value());
  EXPECT_TRUE(llama->is_special(0) && llama->is_special(1) && llama->is_special(2));
  EXPECT_FALSE(llama->is_special(13) || llama->is_special(29871));
}

TEST(SentencePieceEncode, SpecialTextAndOffsets) {
  FUSELLM_REQUIRE_SHARED();
  auto llama = tok::SentencePieceTokenizer::from_file(test::llama2_model());
  // "a<s>b": each side is its own segment with its own dummy prefix; "<s>" is id 1 spanning its text.
  auto enc = llama->encode("a<s>b", false);
  EXPECT_EQ(enc.ids, (std::vector<int32_t>{263, 1, 289}));
  EXPECT_EQ(enc.offsets, (std::vector<std::pair<uint32_t, uint32_t>>{{0, 1}, {1, 4}, {4, 5}}));
  auto bos = llama->encode("Hi", true);
  EXPECT_EQ(bos.ids.front(), 1);
  EXPECT_EQ(bos.offsets.front(), (std::pair<uint32_t, uint32_t>(0, 0)));
}

TEST(SentencePieceEncode, BatchEqualsSequential) {
  FUSELLM_REQUIRE_SHARED();
  auto llama = tok::load_tokenizer(test::llama2_model());
  std::vector<std::string> texts;
  for (const auto& t : test::llama_fixture().texts) texts.push_back(t.text);
  auto batch = llama->encode_batch(texts, true, 2);
  ASSERT_EQ(batch.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    auto one = llama->encode(texts[i], true);
    ASSERT_EQ(batch[i].ids, one.ids) << i;
    ASSERT_EQ(batch[i].offsets, one.offsets) << i;
  }
  EXPECT_TRUE(llama->encode_batch({}, true).empty());
}

// Corrupted models must end in a clear Error or load and work, never crash: truncations and byte flips.
TEST(SentencePieceModel, CorruptedModelsNeverCrash) {
  FUSELLM_REQUIRE_SHARED();
  const std::string original = read_file(test::tok512_model());
  uint64_t state = 12345;
  auto next = [&] { return state = state * 6364136223846793005ULL + 1442695040888963407ULL, state >> 33; };
  int errors = 0, loaded = 0;
  for (int i = 0; i < 300; ++i) {
    std::string bytes = original;
    if (i % 3 == 0) {
      bytes.resize(next() % bytes.size());
    } else {
      for (int k = 0; k < 1 + i % 4; ++k) bytes[next() % bytes.size()] = static_cast<char>(next() & 0xFF);
    }
    try {
      tok::SentencePieceTokenizer t(tok::parse_spm_model(bytes, "mutated.model"), "mutated.model");
      auto ids = t.encode_ids("Once upon a time, Lily saw a big dog.", true);
      t.decode(ids);
      ++loaded;
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("mutated.model"));
      ++errors;
    }
  }
  EXPECT_GT(errors, 50);
  EXPECT_GT(loaded, 10);
}
