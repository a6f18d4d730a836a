// Every supported tokenizer.json component, each in a small hand-made tokenizer.json, against Hugging
// Face's tokenizers (fixture written by tools/tokenizer-reference/gen_components.mjs): ids with and without
// special tokens, offsets, and decoding with and without skipping special tokens. Needs no ../shared.
#include <gtest/gtest.h>

#include "../src/tokenizer/hf_tokenizer.hpp"  // internal factories (not a public header)
#include "hf_test_util.hpp"

namespace fusellm::tok {
namespace {

class HfComponents : public ::testing::TestWithParam<std::string> {};

const json& fixture() {
  static const json j = parse_json_file(test_hf::fixtures_dir() / "hf_components.json");
  return j;
}

std::vector<std::string> configuration_names() {
  std::vector<std::string> names;
  for (const auto& c : fixture()) names.push_back(c["name"].get<std::string>());
  return names;
}

TEST_P(HfComponents, MatchesHuggingFace) {
  const json* config = nullptr;
  for (const auto& c : fixture())
    if (c["name"] == GetParam()) config = &c;
  ASSERT_NE(config, nullptr);
  auto path = test::scratch_dir("hf_components_" + GetParam()) / "tokenizer.json";
  write_file_atomic(path, (*config)["config"].dump());
  auto tokenizer = load_hf_tokenizer_json(path);
  for (const auto& c : (*config)["cases"]) {
    std::string text = c["text"].get<std::string>();
    SCOPED_TRACE("text '" + text + "'");
    Encoding plain = tokenizer->encode(text, false);
    EXPECT_EQ(plain.ids, c["ids"].get<std::vector<int32_t>>());
    // The reference reports code point offsets: compare ours converted the way it converts its own.
    EXPECT_EQ(test_hf::to_code_point_offsets(text, plain.offsets),
              (c["offsets"].get<std::vector<std::pair<uint32_t, uint32_t>>>()));
    EXPECT_EQ(tokenizer->encode_ids(text, true), c["ids_special"].get<std::vector<int32_t>>());
    EXPECT_EQ(tokenizer->decode(plain.ids, false), c["decoded"].get<std::string>());
    EXPECT_EQ(tokenizer->decode(c["ids_special"].get<std::vector<int32_t>>(), true), c["decoded_skip"].get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Configurations, HfComponents, ::testing::ValuesIn(configuration_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace fusellm::tok
