// llama.cpp's tokenizer test vectors (gguf-vocab/*.inp, *.out): 46 strings each, with the ids Hugging Face's
// tokenizers produce (no BOS). Our tokenizer.json and vocab.json + merges.txt readers must agree exactly.
#include <gtest/gtest.h>

#include <sstream>

#include "common/test_paths.hpp"
#include "fusellm/util/fs.hpp"
#include "../src/tokenizer/hf_tokenizer.hpp"  // internal factories (not a public header)

namespace fusellm::tok {
namespace {

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Case> read_cases(const fs::path& inp, const fs::path& out) {
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::string inputs = read_file(inp), outputs = read_file(out);
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inputs.size();) {
    size_t at = inputs.find(separator, pos);
    if (at == std::string::npos) at = inputs.size();
    texts.push_back(inputs.substr(pos, at - pos));
    pos = at + separator.size();
  }
  std::vector<Case> cases;
  std::istringstream lines(outputs);
  std::string line;
  for (const auto& text : texts) {
    std::getline(lines, line);
    Case c{text, {}};
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

void expect_all_cases(const Tokenizer& tokenizer, const std::vector<Case>& cases) {
  ASSERT_EQ(cases.size(), 46u);
  for (const auto& c : cases) {
    EXPECT_EQ(tokenizer.encode_ids(c.text, false), c.ids) << "text: '" << c.text << "'";
    // Byte-level BPE is lossless.
    EXPECT_EQ(tokenizer.decode(c.ids), c.text);
  }
}

TEST(HfGgufVocab, MptCasesThroughGptNeoxTokenizerJson) {
  FUSELLM_REQUIRE_SHARED();
  auto dir = test::shared_dir() / "data/tokenizers";
  auto tokenizer = load_hf_tokenizer_json(dir / "gpt-neox-20b/20B_tokenizer.json");
  expect_all_cases(*tokenizer,
                   read_cases(dir / "gguf-vocab/ggml-vocab-mpt.gguf.inp", dir / "gguf-vocab/ggml-vocab-mpt.gguf.out"));
}

TEST(HfGgufVocab, Gpt2CasesThroughVocabAndMerges) {
  FUSELLM_REQUIRE_SHARED();
  auto dir = test::shared_dir() / "data/tokenizers";
  auto tokenizer = load_gpt2_vocab_merges(dir / "gpt2/gpt2_vocab.json", dir / "gpt2/gpt2_merges.txt");
  expect_all_cases(*tokenizer, read_cases(dir / "gguf-vocab/ggml-vocab-gpt-2.gguf.inp",
                                          dir / "gguf-vocab/ggml-vocab-gpt-2.gguf.out"));
}

}  // namespace
}  // namespace fusellm::tok
