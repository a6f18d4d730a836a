// Llama-2's tokenizer.model through the native reader against two independent references that never
// touch libsentencepiece: llama.cpp's Hugging Face test vectors and llama-tokenizer-js (npm).
#include <gtest/gtest.h>

#include <sstream>

#include "fusellm/tokenizer/sentencepiece.hpp"
#include "spm_test_util.hpp"

using namespace fusellm;

namespace {

// llama.cpp's test-tokenizer-0 format: .inp holds the cases, each followed by "\n__ggml_vocab_test__\n";
// .out has, per case, one line with Hugging Face's ids (no BOS).
std::vector<std::pair<std::string, std::vector<int32_t>>> read_ggml_vocab_cases(const fs::path& inp, const fs::path& out) {
  const std::string marker = "\n__ggml_vocab_test__\n";
  const std::string text = read_file(inp);
  std::vector<std::string> inputs;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find(marker, start);
    if (end == std::string::npos) break;
    inputs.push_back(text.substr(start, end - start));
    start = end + marker.size();
  }
  std::vector<std::pair<std::string, std::vector<int32_t>>> cases;
  std::istringstream lines(read_file(out));
  std::string line;
  for (size_t i = 0; std::getline(lines, line); ++i) {
    std::istringstream fields(line);
    std::vector<int32_t> ids;
    for (int32_t id; fields >> id;) ids.push_back(id);
    if (i < inputs.size()) cases.emplace_back(inputs[i], ids);
  }
  EXPECT_EQ(cases.size(), inputs.size());
  return cases;
}

}  // namespace

TEST(SentencePieceVectors, LlamaCppHuggingFaceVectorsAll46Identical) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path base = test::shared_dir() / "data/tokenizers/gguf-vocab/ggml-vocab-llama-spm.gguf";
  auto cases = read_ggml_vocab_cases(base.string() + ".inp", base.string() + ".out");
  ASSERT_EQ(cases.size(), 46u);
  auto tokenizer = tok::load_tokenizer(test::llama2_model().parent_path());
  EXPECT_EQ(tokenizer->kind(), "sentencepiece");
  int identical = 0;
  for (const auto& [text, expected] : cases) {
    auto ids = tokenizer->encode_ids(text, /*add_special_tokens=*/false);
    EXPECT_EQ(ids, expected) << "text " << testing::PrintToString(text);
    identical += ids == expected;
    // With special tokens: Llama adds BOS only.
    auto with_bos = tokenizer->encode_ids(text, true);
    ASSERT_FALSE(with_bos.empty());
    EXPECT_EQ(with_bos.front(), 1);
    EXPECT_EQ(std::vector<int32_t>(with_bos.begin() + 1, with_bos.end()), expected);
  }
  EXPECT_EQ(identical, 46);
}

TEST(SentencePieceVectors, LlamaTokenizerJsVocabularyIsLlama2s) {
  FUSELLM_REQUIRE_SHARED();
  auto tokenizer = tok::SentencePieceTokenizer::from_file(test::llama2_model());
  const auto& vocab = test::llama_fixture().vocab;
  ASSERT_EQ(vocab.size(), tokenizer->vocab_size());
  for (size_t id = 0; id < vocab.size(); ++id) ASSERT_EQ(tokenizer->id_to_token(static_cast<int32_t>(id)), vocab[id]) << id;
}

TEST(SentencePieceVectors, LlamaTokenizerJsIdsOnOver1000RealTexts) {
  FUSELLM_REQUIRE_SHARED();
  auto tokenizer = tok::SentencePieceTokenizer::from_file(test::llama2_model());
  const auto& texts = test::llama_fixture().texts;
  ASSERT_GE(texts.size(), 1000u);
  size_t mismatches = 0, with_special_text = 0;
  for (const auto& t : texts) {
    auto ids = tokenizer->encode_ids(t.text, false);
    with_special_text += t.text.find("<unk>") != std::string::npos;
    if (ids != t.ids && ++mismatches <= 5)
      ADD_FAILURE() << t.source << ": " << testing::PrintToString(ids) << "\n expected " << testing::PrintToString(t.ids);
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GT(with_special_text, 10u) << "the fixture should exercise special-token text (WikiText's <unk>)";
}
