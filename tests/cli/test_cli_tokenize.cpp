// `fusellm tokenize` / `fusellm detokenize` end to end (the CLI links LibTorch, so this is the native
// SentencePiece reader in a LibTorch process), checked against llama.cpp's Hugging Face vectors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <sys/wait.h>

#include "common/run_cli.hpp"
#include "common/test_paths.hpp"
#include "fusellm/util/fs.hpp"
#include "fusellm/util/json.hpp"

using namespace fusellm;
using testing::HasSubstr;

namespace {

using test::CliResult;
using test::run_cli;

std::string llama_dir() { return (test::shared_dir() / "data/tokenizers/llama2").string(); }

}  // namespace

TEST(CliTokenize, JsonIdsTokensOffsets) {
  FUSELLM_REQUIRE_SHARED();
  auto dir = test::scratch_dir("cli_tokenize");
  write_file_atomic(dir / "in.txt", " Hello, world!");  // HF: 29871 15043 29892 3186 29991
  CliResult r = run_cli("tokenize --tokenizer " + llama_dir() + " --file " + (dir / "in.txt").string() + " --json");
  ASSERT_EQ(r.status, 0) << r.output;
  json out = json::parse(r.output);
  EXPECT_EQ(out["ids"], json({1, 29871, 15043, 29892, 3186, 29991}));
  EXPECT_EQ(out["tokens"][2], "\xE2\x96\x81Hello");
  EXPECT_EQ(out["offsets"][2], json({0, 6}));
  EXPECT_EQ(out["tokenizer_hash"].get<std::string>().size(), 16u);

  r = run_cli("tokenize --tokenizer " + llama_dir() + " --text 'Hello world' --no-special");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "15043\t\xE2\x96\x81Hello\t0:5\n3186\t\xE2\x96\x81world\t5:11\n# 2 tokens\n");
}

TEST(CliTokenize, DetokenizeAndErrors) {
  FUSELLM_REQUIRE_SHARED();
  CliResult r = run_cli("detokenize --tokenizer " + llama_dir() + " --ids 1,15043,3186 --skip-special");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "Hello world\n");
  r = run_cli("detokenize --tokenizer " + llama_dir() + " --ids 99999");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, HasSubstr("token id 99999 is out of range"));
  r = run_cli("tokenize --tokenizer /nonexistent/tok --text x");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, HasSubstr("error: /nonexistent/tok: tokenizer path does not exist"));
}
