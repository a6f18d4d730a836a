// Bad tokenizer files fail with one fusellm::Error naming the file and what is wrong.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../src/tokenizer/hf_tokenizer.hpp"  // internal factories (not a public header)
#include "fusellm/tokenizer/tokenizer.hpp"
#include "hf_test_util.hpp"

namespace fusellm::tok {
namespace {

using ::testing::HasSubstr;

json minimal_tokenizer_json() {
  return json::parse(R"({
    "version": "1.0", "added_tokens": [], "normalizer": null, "post_processor": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
  })");
}

// Writes `content` as a tokenizer.json and returns the error message loading it gives.
std::string load_error(const std::string& name, const std::string& content, fs::path* path_out = nullptr) {
  auto path = test::scratch_dir("hf_errors_" + name) / "tokenizer.json";
  write_file_atomic(path, content);
  if (path_out) *path_out = path;
  try {
    load_hf_tokenizer_json(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(HfErrors, MinimalTokenizerLoadsAndMerges) {
  auto path = test::scratch_dir("hf_errors_ok") / "tokenizer.json";
  write_file_atomic(path, minimal_tokenizer_json().dump());
  auto tokenizer = load_hf_tokenizer_json(path);
  EXPECT_EQ(tokenizer->encode_ids("ab", false), std::vector<int32_t>{2});
  EXPECT_EQ(tokenizer->source(), path.string());
  EXPECT_EQ(tokenizer->hash().size(), 16u);
}

TEST(HfErrors, NotJson) {
  fs::path path;
  std::string message = load_error("not_json", "{\"model\": [1, 2,", &path);
  EXPECT_THAT(message, HasSubstr(path.string()));
}

TEST(HfErrors, MissingFile) {
  EXPECT_THROW(load_hf_tokenizer_json(test::scratch_dir("hf_errors_missing") / "tokenizer.json"), Error);
}

TEST(HfErrors, UnknownModelType) {
  json j = minimal_tokenizer_json();
  j["model"]["type"] = "Unigram";
  fs::path path;
  std::string message = load_error("unigram", j.dump(), &path);
  EXPECT_THAT(message, HasSubstr(path.string()));
  EXPECT_THAT(message, HasSubstr("Unigram"));
}

TEST(HfErrors, MergesNamingUnknownTokens) {
  json j = minimal_tokenizer_json();
  j["model"]["merges"] = json::array({"a c"});
  fs::path path;
  std::string message = load_error("unknown_merge", j.dump(), &path);
  EXPECT_THAT(message, HasSubstr(path.string()));
  EXPECT_THAT(message, HasSubstr("'c'"));
  j["model"]["merges"] = json::array({json::array({"b", "a"})});  // "ba" is not in the vocabulary
  EXPECT_THAT(load_error("unknown_merge_result", j.dump()), HasSubstr("'ba'"));
}

TEST(HfErrors, UnsupportedComponentsNameTheirType) {
  json j = minimal_tokenizer_json();
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  EXPECT_THAT(load_error("bert_pre", j.dump()), HasSubstr("pre_tokenizer type 'BertPreTokenizer'"));
  j = minimal_tokenizer_json();
  j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}};
  EXPECT_THAT(load_error("precompiled", j.dump()), HasSubstr("normalizer type 'Precompiled'"));
  j = minimal_tokenizer_json();
  j["decoder"] = {{"type", "WordPiece"}};
  EXPECT_THAT(load_error("wordpiece_decoder", j.dump()), HasSubstr("decoder type 'WordPiece'"));
  j = minimal_tokenizer_json();
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  EXPECT_THAT(load_error("roberta", j.dump()), HasSubstr("post_processor type 'RobertaProcessing'"));
  j = minimal_tokenizer_json();
  j["model"]["dropout"] = 0.1;
  EXPECT_THAT(load_error("dropout", j.dump()), HasSubstr("dropout"));
  j = minimal_tokenizer_json();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}, {"invert", false}};
  EXPECT_THAT(load_error("bad_regex", j.dump()), HasSubstr("(unclosed"));
}

// A catastrophically backtracking pre-tokenizer pattern ((a+)+$ on a run of a's that does not end the
// text: 2^n paths) hits PCRE2's match limit and fails with an error naming the pattern's origin, instead
// of hanging tokenize. Without the limit this input would run for longer than the universe has existed.
TEST(HfErrors, BacktrackingRegexFailsInsteadOfHanging) {
  json j = minimal_tokenizer_json();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(a+)+$"}}}, {"behavior", "Isolated"}, {"invert", false}};
  auto path = test::scratch_dir("hf_errors_backtracking") / "tokenizer.json";
  write_file_atomic(path, j.dump());
  auto tokenizer = load_hf_tokenizer_json(path);
  EXPECT_EQ(tokenizer->encode_ids("aab", false).size(), 2u);  // a harmless input still works
  try {
    tokenizer->encode_ids(std::string(64, 'a') + "b", false);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("match limit"));
    EXPECT_THAT(e.what(), HasSubstr("pre_tokenizer"));
  }
}

// Found by fuzzing (fuzz/regressions/tokenizer_json, gpt2_files): a wrong-typed model key escaped as a
// nlohmann exception, and a vocabulary id of 2^31 - 1 made the id table allocate 64 GiB. Both are errors
// naming the file.
TEST(HfErrors, WrongTypedKeysAndSparseIdsAreErrorsNamingTheFile) {
  json j = minimal_tokenizer_json();
  j["model"]["byte_fallback"] = 374;
  auto dir = test::scratch_dir("hf_errors_typed");
  write_file_atomic(dir / "tokenizer.json", j.dump());
  try {
    load_tokenizer(dir / "tokenizer.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr((dir / "tokenizer.json").string()));
  }
  auto gpt2 = test::scratch_dir("hf_errors_sparse_ids");
  write_file_atomic(gpt2 / "vocab.json", R"({"a": 0, "b": 2147483646})");
  write_file_atomic(gpt2 / "merges.txt", "#version: 0.2\n");
  try {
    load_tokenizer(gpt2);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("far beyond its 2 entries"));
    EXPECT_THAT(e.what(), HasSubstr(gpt2.string()));
  }
}

TEST(HfErrors, Gpt2MergesNamingUnknownTokensNameTheMergesFile) {
  auto dir = test::scratch_dir("hf_errors_gpt2");
  write_file_atomic(dir / "vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  write_file_atomic(dir / "merges.txt", "#version: 0.2\na b\nb q\n");
  try {
    load_gpt2_vocab_merges(dir / "vocab.json", dir / "merges.txt");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr((dir / "merges.txt").string()));
    EXPECT_THAT(e.what(), HasSubstr("'q'"));
  }
  write_file_atomic(dir / "merges.txt", "a b\n");
  auto tokenizer = load_gpt2_vocab_merges(dir / "vocab.json", dir / "merges.txt");
  EXPECT_EQ(tokenizer->encode_ids("abab", false), (std::vector<int32_t>{2, 2}));
}

}  // namespace
}  // namespace fusellm::tok
