// `fusellm run`: the whole pipeline of a config (prepare → infer → align → train → eval) in one command.
// A run killed with SIGKILL during training and started again (the same command, no --resume) verifies
// the finished stages, resumes training from its checkpoint and ends with the weights and bits per byte
// of an uninterrupted run, bit for bit; a third run only verifies. Unknown or inapplicable stages are
// one-line errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "common/run_cli.hpp"
#include "common/test_paths.hpp"
#include "common/tiny_sources.hpp"
#include "common/train_cli_util.hpp"
#include "fusellm/train/checkpoint.hpp"
#include "teacher/infer_test_util.hpp"

namespace fusellm {
namespace {

using testing::HasSubstr;

// A config whose every output lives under dir/name: stories260K target, stories260K and a tiny NeoX
// (GPT-NeoX-20B tokenizer) as sources, MinCE fusion, 8 steps, bits per byte of the corpus after training.
std::string write_run_config(const fs::path& dir, const std::string& name, const fs::path& corpus, const fs::path& neox) {
  const fs::path out = dir / name;
  const std::string stories = test::stories_model_dir().string();
  json c = {
      {"models", json::array({{{"name", "target"}, {"path", stories}, {"role", "target"}},
                              {{"name", "stories"}, {"path", stories}, {"role", "source"}},
                              {{"name", "neox"}, {"path", neox.string()}, {"role", "source"}}})},
      {"data", {{"corpus", corpus.string()}, {"txt_mode", "separator"}, {"chunk_dir", (out / "chunks").string()},
                {"max_length", 64}}},
      {"infer", {{"store_dir", (out / "store").string()}, {"top_k", 5}, {"batch_tokens", 1024}, {"dtype", "fp32"}}},
      {"align", {{"out_dir", (out / "aligned").string()}}},
      {"fusion", {{"strategy", "minCE"}, {"divergence", "ce"}, {"lambda", 0.9}}},
      {"train", {{"lr", 3e-3}, {"warmup_steps", 2}, {"max_steps", 8}, {"micro_batch", 2}, {"grad_accum", 1},
                 {"max_length", 64}, {"save_every", 2}, {"keep_last", 2}, {"log_every", 2},
                 {"output_dir", (out / "train").string()}}},
      {"eval", {{"tasks", "bpb"}, {"data", {{"bpb", corpus.string()}}}, {"limit", 6}, {"models", "trained"},
                {"out_dir", (out / "evals").string()}}}};
  const fs::path file = dir / (name + ".json");
  std::ofstream(file) << c.dump(2) << "\n";
  return file.string();
}

TEST(RunCli, KilledPipelineContinuesToTheUninterruptedResult) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path dir = test::scratch_dir("run_cli");
  const fs::path corpus = test::write_small_corpus(dir, 4000);
  const fs::path neox = test::make_neox_source(dir / "neox-tiny");

  const std::string whole = write_run_config(dir, "whole", corpus, neox);
  const test::Exit a = test::run_cli_env({"run", "--config", whole, "--no-progress"}, {}, dir / "whole.log");
  ASSERT_EQ(a.code, 0) << a.output;
  for (const char* stage : {"prepare", "infer", "align", "train", "eval"}) EXPECT_THAT(a.output, HasSubstr(stage));
  EXPECT_THAT(a.output, HasSubstr("run: "));

  const std::string killed = write_run_config(dir, "killed", corpus, neox);
  const test::Exit k = test::run_cli_env({"run", "--config", killed, "--no-progress"}, {"FUSELLM_TRAIN_KILL_AT_STEP=5"},
                                         dir / "killed-1.log");
  ASSERT_NE(k.code, 0) << "the kill hook did not fire: " << k.output;
  const test::Exit again = test::run_cli_env({"run", "--config", killed, "--no-progress"}, {}, dir / "killed-2.log");
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("verified (complete before)"));  // prepare, infer, align
  EXPECT_THAT(again.output, HasSubstr("resumed from"));

  const auto last_a = train::latest_checkpoint(dir / "whole/train"), last_k = train::latest_checkpoint(dir / "killed/train");
  ASSERT_TRUE(last_a && last_k);
  EXPECT_EQ(last_a->filename(), last_k->filename());
  const auto [worst_name, worst] = test::max_weight_diff(*last_a, *last_k);
  EXPECT_EQ(worst, 0.0) << worst_name;
  EXPECT_EQ(test::step_losses(dir / "whole/train"), test::step_losses(dir / "killed/train"));
  const json bpb_a = parse_json_file(dir / "whole/evals/trained/results.json")["results"]["bpb"];
  const json bpb_k = parse_json_file(dir / "killed/evals/trained/results.json")["results"]["bpb"];
  EXPECT_EQ(bpb_a.dump(), bpb_k.dump());

  const test::Exit third = test::run_cli_env({"run", "--config", killed, "--no-progress"}, {}, dir / "killed-3.log");
  ASSERT_EQ(third.code, 0) << third.output;
  for (const char* stage : {"prepare", "infer", "align", "train", "eval"})
    EXPECT_THAT(third.output, testing::ContainsRegex(std::string(stage) + " +[0-9.]+ s  verified"));
}

TEST(RunCli, StageErrorsAreOneLine) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path dir = test::scratch_dir("run_cli_errors");
  const fs::path corpus = test::write_small_corpus(dir, 1000);
  json c = {{"models", json::array({{{"name", "t"}, {"path", test::stories_model_dir().string()}, {"role", "target"}}})},
            {"data", {{"corpus", corpus.string()}, {"txt_mode", "separator"}, {"chunk_dir", (dir / "chunks").string()},
                      {"max_length", 64}}},
            {"train", {{"max_steps", 1}, {"micro_batch", 1}, {"max_length", 32}, {"output_dir", (dir / "t").string()}}}};
  const fs::path file = dir / "clm.json";
  std::ofstream(file) << c.dump(2) << "\n";
  const test::Exit typo = test::run_cli_env({"run", "--config", file.string(), "--stages", "prepare,trian"}, {}, dir / "typo.log");
  EXPECT_EQ(typo.code, 1);
  EXPECT_THAT(typo.output, HasSubstr("--stages: unknown stage 'trian' (did you mean 'train'?)"));
  const test::Exit no_sources = test::run_cli_env({"run", "--config", file.string(), "--stages", "infer"}, {}, dir / "infer.log");
  EXPECT_EQ(no_sources.code, 1);
  EXPECT_THAT(no_sources.output, HasSubstr("--stages infer: " + file.string() + " has no source models"));
  // A CLM-only config runs its applicable stages and says what it skipped.
  const test::Exit clm = test::run_cli_env({"run", "--config", file.string(), "--no-progress"}, {}, dir / "clm.log");
  ASSERT_EQ(clm.code, 0) << clm.output;
  EXPECT_THAT(clm.output, HasSubstr("skipped: no source models"));
  EXPECT_THAT(clm.output, HasSubstr("skipped: no eval section"));
}

}  // namespace
}  // namespace fusellm
