// `fusellm eval` end to end on stories260K: results.json in lm-eval's shape, per-sample JSONL; a run killed
// (SIGKILL, half-way through a cache line) and rerun gives an identical results.json and says how many
// requests it recomputed (0 on a third run); two ranks give the same results as one process; unknown tasks
// and bad rows are one-line errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <fstream>

#include "common/run_cli.hpp"
#include "common/test_paths.hpp"
#include "common/train_cli_util.hpp"
#include "fusellm/tokenizer/tokenizer.hpp"
#include "teacher/infer_test_util.hpp"

namespace fusellm {
namespace {

using testing::HasSubstr;

std::vector<std::string> eval_args(const fs::path& out, const std::string& tasks = "arc_easy,boolq,winogrande,bbh_sports_understanding",
                                   const std::string& limit = "6") {
  return {"eval", "--model", (test::shared_dir() / "data/models/stories260K-hf").string(), "--tasks", tasks, "--out",
          out.string(), "--limit", limit, "--shared", test::shared_dir().string(), "--no-progress"};
}

TEST(EvalCli, ResultsKillResumeAndRanks) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path dir = test::scratch_dir("eval_cli");
  const test::Exit ref = test::run_cli_env(eval_args(dir / "ref"), {}, dir / "ref.log");
  ASSERT_EQ(ref.code, 0) << ref.output;
  EXPECT_THAT(ref.output, HasSubstr("computed now, 0 from the cache"));
  const json results = parse_json_file(dir / "ref" / "results.json");
  for (const char* task : {"arc_easy", "boolq", "winogrande", "bbh_sports_understanding"}) {
    ASSERT_TRUE(results["results"].contains(task)) << task;
    EXPECT_TRUE(fs::exists(dir / "ref" / "samples" / (std::string(task) + ".jsonl"))) << task;
  }
  EXPECT_TRUE(results["results"]["arc_easy"].contains("acc_norm_stderr"));
  EXPECT_EQ(results["versions"]["boolq"], 1);
  EXPECT_EQ(results["fusellm"]["counts"]["arc_easy"]["documents"], 6);
  EXPECT_EQ(results["config"]["num_fewshot"], 0);
  EXPECT_THAT(ref.output, HasSubstr("bbh_sports_understanding"));  // the table
  const std::string want = read_file(dir / "ref" / "results.json");

  // Killed after 20 new answers, half-way through writing the 21st line; rerun; rerun again.
  const test::Exit killed = test::run_cli_env(eval_args(dir / "killed"), {"FUSELLM_EVAL_KILL_AFTER=20"}, dir / "killed.log");
  ASSERT_TRUE(killed.killed) << killed.output;
  EXPECT_EQ(killed.code, SIGKILL);
  const test::Exit resumed = test::run_cli_env(eval_args(dir / "killed"), {}, dir / "resumed.log");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("from the cache"));
  EXPECT_THAT(resumed.output, testing::Not(HasSubstr(" 0 from the cache")));
  EXPECT_EQ(read_file(dir / "killed" / "results.json"), want);
  const test::Exit again = test::run_cli_env(eval_args(dir / "killed"), {}, dir / "again.log");
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr(": 0 computed now,"));
  EXPECT_EQ(read_file(dir / "killed" / "results.json"), want);

  // Two ranks: each answers half the requests, rank 0 merges. Same metrics as one process.
  const std::string port = "MASTER_PORT=" + std::to_string(test::free_port());
  std::vector<pid_t> pids;
  for (int r = 0; r < 2; ++r)
    pids.push_back(test::spawn_cli(eval_args(dir / "ranks"),
                                   {"RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r), "WORLD_SIZE=2",
                                    "MASTER_ADDR=127.0.0.1", port},
                                   dir / ("rank" + std::to_string(r) + ".log")));
  for (int r = 0; r < 2; ++r) {
    const test::Exit e = test::wait_cli(pids[size_t(r)], dir / ("rank" + std::to_string(r) + ".log"));
    ASSERT_EQ(e.code, 0) << e.output;
  }
  const json two = parse_json_file(dir / "ranks" / "results.json");
  for (const auto& [task, metrics] : results["results"].items())
    for (const auto& [metric, value] : metrics.items())
      EXPECT_NEAR(two["results"][task][metric].get<double>(), value.get<double>(), 1e-12) << task << " " << metric;
}

// `fusellm eval --config C`: the config's eval section, the target before and the latest checkpoint after
// `fusellm train`, side by side; a typo in the section is a one-line error.
TEST(EvalCli, ConfigSectionEvaluatesTargetBeforeAndAfterTraining) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path dir = test::scratch_dir("eval_cli_config");
  const fs::path corpus = test::write_small_corpus(dir, 6000), chunks = dir / "chunks";
  auto tokenizer = tok::load_tokenizer(test::stories_model_dir());
  test::make_chunk_dataset(chunks, corpus, *tokenizer, 64, true, true);
  auto write_config = [&](const std::string& name, const json& eval_section) {
    json c = {{"models", json::array({{{"name", "stories"}, {"path", test::stories_model_dir().string()},
                                       {"role", "target"}}})},
              {"data", {{"corpus", corpus.string()}, {"txt_mode", "separator"}, {"chunk_dir", chunks.string()},
                        {"max_length", 64}}},
              {"train", {{"lr", 1e-3}, {"max_steps", 2}, {"micro_batch", 2}, {"max_length", 32},
                         {"output_dir", (dir / "train").string()}}},
              {"eval", eval_section}};
    const fs::path file = dir / (name + ".json");
    std::ofstream(file) << c.dump(2) << "\n";
    return file.string();
  };
  const json section = {{"tasks", "arc_easy,boolq"}, {"limit", 4}, {"out_dir", "evals"}, {"models", "both"}};
  const std::string config = write_config("exp", section);
  const std::vector<std::string> eval = {"eval", "--config", config, "--shared", test::shared_dir().string(), "--no-progress"};
  const test::Exit before = test::run_cli_env(eval, {}, dir / "before.log");
  EXPECT_EQ(before.code, 1);
  EXPECT_THAT(before.output, HasSubstr("run `fusellm train --config` first"));
  const test::Exit train = test::run_cli_env(test::train_args(config), {}, dir / "train.log");
  ASSERT_EQ(train.code, 0) << train.output;
  const test::Exit both = test::run_cli_env(eval, {}, dir / "both.log");
  ASSERT_EQ(both.code, 0) << both.output;
  EXPECT_TRUE(fs::exists(dir / "evals" / "target" / "results.json"));
  EXPECT_TRUE(fs::exists(dir / "evals" / "trained" / "results.json"));
  EXPECT_THAT(both.output, HasSubstr("trained"));
  EXPECT_THAT(both.output, HasSubstr("change"));
  EXPECT_EQ(parse_json_file(dir / "evals" / "trained" / "results.json")["fusellm"]["counts"]["boolq"]["documents"], 4);
  json typo = section;
  typo["limt"] = 3;
  const test::Exit bad = test::run_cli_env({"eval", "--config", write_config("typo", typo), "--no-progress"}, {},
                                           dir / "typo.log");
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(bad.output, HasSubstr("eval.limt: unknown key (did you mean 'limit'?)"));
}

TEST(EvalCli, ErrorsAreOneLine) {
  FUSELLM_REQUIRE_SHARED();
  const fs::path dir = test::scratch_dir("eval_cli_errors");
  const test::Exit typo = test::run_cli_env(eval_args(dir / "typo", "arc_easy,hellaswg"), {}, dir / "typo.log");
  EXPECT_EQ(typo.code, 1);
  EXPECT_THAT(typo.output, HasSubstr("unknown task 'hellaswg' (did you mean 'hellaswag'?)"));
  const fs::path bad = dir / "bad.jsonl";
  std::ofstream(bad) << "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n{\"query\": 3}\n";
  auto args = eval_args(dir / "bad", "piqa");
  args.push_back("--data");
  args.push_back("piqa=" + bad.string());
  const test::Exit row = test::run_cli_env(args, {}, dir / "bad.log");
  EXPECT_EQ(row.code, 1);
  EXPECT_THAT(row.output, HasSubstr(bad.string() + ":2: field 'query' must be a string"));
  EXPECT_EQ(std::count(row.output.begin(), row.output.end(), '\n'), 1) << row.output;
}

}  // namespace
}  // namespace fusellm
