// `fusellm prepare` as a user runs it: config in, chunk dataset and summary out; a second run reuses the
// dataset; other settings fail with one line unless --force. Skipped when the CLI binary is not built.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>

#include "fusellm/data/chunk_dataset.hpp"
#include "test_chunk_util.hpp"

namespace fusellm::data {
namespace {

using ::testing::HasSubstr;

struct CliRun {
  int rc;
  std::string output;
};

CliRun run_prepare(const fs::path& dir, const std::string& args) {
  const fs::path out = dir / "cli_output.txt";
  const std::string cmd = "'" + test::cli_path() + "' --log-level warn prepare " + args + " > '" + out.string() + "' 2>&1";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, fs::exists(out) ? read_file(out) : ""};
}

void write_config(const fs::path& path, int max_length) {
  const fs::path shared = test::shared_dir() / "data";
  const json config = {
      {"models",
       {{{"name", "llama2"}, {"path", (shared / "tokenizers/llama2").string()}, {"role", "source"}},
        {{"name", "stories"}, {"path", (shared / "models/stories260K-hf").string()}, {"role", "target"}}}},
      {"data", {{"corpus", "corpus.txt"}, {"chunk_dir", "chunks"}, {"max_length", max_length}, {"margin", 4}}}};
  test::write_text_file(path, config.dump(2));
}

TEST(PrepareCli, WritesReusesAndRefusesOtherSettings) {
  FUSELLM_REQUIRE_SHARED();
  if (!fs::exists(test::cli_path())) GTEST_SKIP() << test::cli_path() << " not built (target fusellm_cli)";
  const fs::path dir = test::scratch_dir("prepare_cli");
  std::string corpus;
  for (const auto& p : test::paragraphs_of(test::shared_dir() / "data/corpus/tinyshakespeare.txt", 6000)) corpus += p + "\n\n";
  test::write_text_file(dir / "corpus.txt", corpus);
  write_config(dir / "experiment.json", 64);

  const CliRun first = run_prepare(dir, "--config '" + (dir / "experiment.json").string() + "' --threads 2");
  ASSERT_EQ(first.rc, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("chunk dataset " + (dir / "chunks").string()));
  EXPECT_THAT(first.output, HasSubstr("forced cuts 0"));
  EXPECT_THAT(first.output, HasSubstr("max tokens per chunk (llama2)"));
  const ChunkDataset ds = ChunkDataset::open(dir / "chunks");
  EXPECT_THAT(first.output, HasSubstr("dataset hash " + ds.hash()));
  EXPECT_EQ(ds.manifest().settings["max_length"], 64);

  const CliRun again = run_prepare(dir, "--config '" + (dir / "experiment.json").string() + "'");
  ASSERT_EQ(again.rc, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("reused"));

  write_config(dir / "experiment.json", 96);
  const CliRun other = run_prepare(dir, "--config '" + (dir / "experiment.json").string() + "'");
  EXPECT_NE(other.rc, 0);
  EXPECT_THAT(other.output, HasSubstr("error: " + (dir / "chunks").string()));
  EXPECT_THAT(other.output, HasSubstr("max_length: 64 vs 96"));
  const CliRun forced = run_prepare(dir, "--config '" + (dir / "experiment.json").string() + "' --force");
  ASSERT_EQ(forced.rc, 0) << forced.output;
  EXPECT_EQ(ChunkDataset::open(dir / "chunks").manifest().settings["max_length"], 96);
}

}  // namespace
}  // namespace fusellm::data
