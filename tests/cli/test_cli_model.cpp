// `fusellm inspect | score | generate` end to end on the real stories260K checkpoint, and the CLI's
// promise for user mistakes: one line naming what is wrong, a non-zero exit, no stack trace.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include "common/run_cli.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

using namespace fusellm;
using testing::HasSubstr;

namespace {

std::string stories_dir() { return (test::shared_dir() / "data/models/stories260K-hf").string(); }

json reference_outputs() {
  return parse_json_file(test::shared_dir() / "data/models/stories260K/stories260K_reference_outputs.json");
}

void expect_one_line_error(const test::CliResult& r, const std::string& names) {
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("error: "));
  EXPECT_THAT(r.output, HasSubstr(names));
}

}  // namespace

TEST(CliModel, InspectReportsFamilyParametersAndTokenizer) {
  FUSELLM_REQUIRE_SHARED();
  auto r = test::run_cli("inspect --json " + stories_dir(), /*merge_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  json out = json::parse(r.output);
  EXPECT_EQ(out["model_type"], "llama");
  EXPECT_EQ(out["parameters"], 292800);  // llama2.c's stories260K: 260K in blocks + the shared 512x64 embedding
  EXPECT_EQ(out["context_length"], 512);
  EXPECT_EQ(out["kv_heads"], 4);
  EXPECT_EQ(out["dtypes"]["F32"], 292800);
  EXPECT_THAT(out["tokenizer_files"].dump(), HasSubstr("tokenizer.model"));
}

TEST(CliModel, GreedyGenerateReproducesReferenceWithAndWithoutCache) {
  FUSELLM_REQUIRE_SHARED();
  json ref = reference_outputs()["greedy_from_bos"];
  std::vector<int64_t> expected = ref["tokens_including_bos"].get<std::vector<int64_t>>();
  expected.erase(expected.begin());  // drop BOS
  expected.resize(64);
  for (const char* cache_flag : {"", "--no-cache"}) {
    auto r = test::run_cli("generate --model " + stories_dir() + " --ids 1 --max-new-tokens 64 --ignore-eos --json " +
                               cache_flag,
                           /*merge_stderr=*/false);
    ASSERT_EQ(r.status, 0) << r.output;
    json out = json::parse(r.output);
    EXPECT_EQ(out["tokens"].get<std::vector<int64_t>>(), expected) << cache_flag;
    EXPECT_GT(out["tokens_per_second"].get<double>(), 0.0);
  }
}

// The plain-text output with stdout and stderr on one pipe: the ids line holds exactly the generated ids and
// the timing line stands on its own line after it.
TEST(CliModel, GenerateTextOutputKeepsIdsAndTimingOnSeparateLines) {
  FUSELLM_REQUIRE_SHARED();
  json ref = reference_outputs()["greedy_from_bos"];
  std::vector<int64_t> expected = ref["tokens_including_bos"].get<std::vector<int64_t>>();
  expected.erase(expected.begin());
  expected.resize(40);
  auto r = test::run_cli("generate --model " + stories_dir() + " --ids 1 --max-new-tokens 40 --ignore-eos");
  ASSERT_EQ(r.status, 0) << r.output;
  std::istringstream lines(r.output);
  std::vector<std::string> ids_lines, timing_lines;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("ids:", 0) == 0) ids_lines.push_back(line);
    if (line.find(" tokens in ") != std::string::npos) timing_lines.push_back(line);
  }
  ASSERT_EQ(ids_lines.size(), 1u) << r.output;
  std::istringstream ids(ids_lines[0].substr(4));
  std::vector<int64_t> got;
  for (std::string word; ids >> word;) {
    ASSERT_TRUE(std::all_of(word.begin(), word.end(), ::isdigit)) << "'" << word << "' in " << ids_lines[0];
    got.push_back(std::stoll(word));
  }
  EXPECT_EQ(got, expected);
  ASSERT_EQ(timing_lines.size(), 1u) << r.output;
  EXPECT_EQ(timing_lines[0].rfind("40 tokens in ", 0), 0u) << timing_lines[0];
}

TEST(CliModel, ScoreMatchesReferenceNllAndTextPath) {
  FUSELLM_REQUIRE_SHARED();
  // Teacher-forced NLL over the reference's own greedy tokens: the reference reports 0.45734632.
  json ref = reference_outputs()["greedy_from_bos"];
  auto tokens = ref["tokens_including_bos"].get<std::vector<int64_t>>();
  std::string ids;
  for (size_t i = 0; i < tokens.size(); ++i) ids += (i ? "," : "") + std::to_string(tokens[i]);
  auto r = test::run_cli("score --json --model " + stories_dir() + " --ids " + ids, /*merge_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  json out = json::parse(r.output);
  EXPECT_EQ(out["num_scored"], tokens.size() - 1);
  EXPECT_NEAR(out["mean_nll"].get<double>(), 0.45734632, 2e-5);
  EXPECT_NEAR(out["perplexity"].get<double>(), std::exp(out["mean_nll"].get<double>()), 1e-9);
  double total = 0;
  for (auto& t : out["tokens"]) total -= t["logprob"].get<double>();
  EXPECT_NEAR(total, out["total_nll"].get<double>(), 1e-9);

  // --text goes through the model's tokenizer (BOS added, as tokenizer_config.json says).
  r = test::run_cli("score --json --model " + stories_dir() + " --text 'Once upon a time'", /*merge_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  out = json::parse(r.output);
  EXPECT_EQ(out["tokens"][0]["id"], 403);  // 1 (BOS), then "▁Once" = 403 in tok512, as in the reference prompt
}

TEST(CliModel, UserMistakesGiveOneLineErrors) {
  FUSELLM_REQUIRE_SHARED();
  expect_one_line_error(test::run_cli("score --model /nonexistent/model --ids 1,2"), "/nonexistent/model");
  expect_one_line_error(test::run_cli("generate --model " + stories_dir() + " --ids 1,x"), "--ids");
  expect_one_line_error(test::run_cli("score --model " + stories_dir() + " --ids 1,999999"), "999999");
  expect_one_line_error(test::run_cli("score --model " + stories_dir() + " --ids 1,2 --dtype fp8"), "--dtype");
  expect_one_line_error(test::run_cli("inspect /nonexistent/dir"), "/nonexistent/dir");
  auto dir = test::scratch_dir("cli_bad_config");
  write_file_atomic(dir / "config.json", R"({"model_type": "llama", "vocab_size": 10})");
  expect_one_line_error(test::run_cli("score --model " + dir.string() + " --ids 1,2"), "config.json");
  write_file_atomic(dir / "config.json", R"({"model_type": "gpt5"})");
  expect_one_line_error(test::run_cli("inspect " + dir.string()), "gpt5");
}
